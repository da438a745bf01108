// The CONNECT stage, before the greeting: the client's name (smtpd_peername_lookup), anvil's
// per-client connection count and rate limits with smtpd_client_event_limit_exceptions exempt,
// the bare-newline exclusion decided once for the session, and the connect restrictions (a
// reject is answered later, at MAIL or ETRN, as with smtpd_delay_reject).
// Trusts the DNS lookup only within its time limit, and the network lists (networks.ts).

import type { BackstopConnection } from './connection.js';
import { check } from './verdict.js';
import { clientListed } from './networks.js';
import * as slog from './log.js';
import { smtpdConnections } from '../observe/index.js';

/** Look-ups of the client name wait this long at most (then the name is a temporary 'unknown'). */
const NAME_LOOKUP_MS = 10_000;

/** true: send the greeting; false: refused (421 sent); 'closed': the client left meanwhile. */
export async function connectStage(c: BackstopConnection): Promise<boolean | 'closed'> {
  const { settings: s, state: st, ctx, log } = c;
  const ip = c.remoteAddress;
  if (s.peernameLookup && ctx.dns) {
    try {
      const n = await withTimeout(ctx.dns.clientName(ip), NAME_LOOKUP_MS);
      if (n) {
        st.clientName = n.name;
        st.reverseName = n.reverseName;
        st.nameTemp = !!n.temporary;
      }
    } catch {
      st.nameTemp = true;
    }
  }
  st.client = slog.clientId(st.clientName, ip);
  const exempt = await clientListed(ctx.networks.eventLimitExceptions, st.clientName, ip, log);
  c.bareLfExempt = await clientListed(ctx.networks.bareNewlineExclusions, st.clientName, ip, log);
  if (c._closing || c._closed) return 'closed';
  slog.logConnect(log, st.client);
  smtpdConnections.inc();
  // As smtpd.c: a client in smtpd_client_event_limit_exceptions never reaches anvil at all.
  if (exempt) {
    const v = await check(c, 'connect');
    if (v.action === 'reject') st.connectVerdict = v;
    return true;
  }
  const a = await ctx.anvil.connect(ip, {
    count: s.connectionCountLimit,
    rate: s.connectionRateLimit,
    unitSeconds: s.rateTimeUnit,
    exempt,
  });
  c.anvilCounted = true;
  if (c._closing || c._closed) {
    // Gone while anvil answered: the session's end already ran without this count; release it.
    ctx.anvil.disconnect(ip);
    c.anvilCounted = false;
    return 'closed';
  }
  if (!a.ok) {
    log.warning(
      a.reason === 'count'
        ? `Connection concurrency limit exceeded: ${a.count} from ${st.client} for service ${ctx.service}`
        : `Connection rate limit exceeded: ${a.rate} from ${st.client} for service ${ctx.service}`,
    );
    c.ended = true;
    c.send(421, `4.7.0 ${s.myhostname} Error: too many connections from ${ip}`, false);
    return false;
  }
  const v = await check(c, 'connect');
  if (v.action === 'reject') st.connectVerdict = v;
  return true;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(undefined), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
