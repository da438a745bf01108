// Fast flush: `postqueue -f` (all deferred mail, dead list ignored) and ETRN / `postqueue -s`
// (deferred mail for one domain). A domain is eligible when it is in fast_flush_domains or has
// mail in the queue — which covers permit_mx_backup domains, unlike Postfix's ETRN. Trusts the
// queue's listing; delivery is activation's job.

import { domainOf } from '../mail/index.js';
import type { QmgrCore } from './core.js';

/** Domain list match as Postfix's domain lists do (parent_domain_matches_subdomains). */
export function domainListMatch(domain: string, list: string[]): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '');
  for (const raw of list) {
    const p = raw.toLowerCase().replace(/\.$/, '');
    if (!p || p.includes(':')) continue;
    if (p.startsWith('.')) {
      if (d.endsWith(p)) return true;
    } else if (d === p || d.endsWith('.' + p)) return true;
  }
  return false;
}

/** postqueue -f: every deferred message now, dead list ignored. */
export function flushAll(q: QmgrCore): void {
  q.log.info('flush all deferred mail');
  for (const d of q.dests.values()) if (d.isDead(q.now())) d.revive();
  for (const e of q.queue.list('deferred')) q.enqueue(e.id, true);
}

/** ETRN / postqueue -s: deferred mail with a recipient in `domain` now; false when not eligible. */
export function flushDomain(q: QmgrCore, domain: string): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '').replace(/^\[(.*)\]$/, '$1');
  const ids: string[] = [];
  let hasMail = false;
  for (const e of q.queue.list()) {
    if (e.queue === 'corrupt') continue;
    let match = false;
    for (let i = 0; i < e.recipients.length; i++) if (e.status[i] === 'P' && domainOf(e.recipients[i]) === d) match = true;
    if (!match) continue;
    hasMail = true;
    if (e.queue === 'deferred') ids.push(e.id);
  }
  if (!hasMail && !domainListMatch(d, q.params.fast_flush_domains)) return false;
  for (const dest of q.dests.values()) if (dest.domains.has(d) && dest.isDead(q.now())) dest.revive();
  q.log.info(`flush domain ${d}: ${ids.length} deferred message${ids.length === 1 ? '' : 's'}`);
  for (const id of ids) q.enqueue(id, true);
  return true;
}
