// smtpd's network lists outside the restriction lists: smtpd_client_event_limit_exceptions (the
// clients anvil does not limit) and smtpd_forbid_bare_newline_exclusions. Both default to
// $mynetworks in whatever form it takes — networks, host names, /file, cidr: and other tables —
// so they are compiled with the restriction engine's MatchList, the one network matcher of smtpd
// (two matchers once disagreed about cidr: tables). Compiled once per listener generation: a bad
// element fails the start or the reload, naming the parameter. Trusts the tables module.

import type { Config } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { openTable, type LookupTable } from '../tables/index.js';
import { MatchList } from './check/matchlist.js';

export interface SmtpdNetworks {
  /** smtpd_client_event_limit_exceptions: exempt from the connection count and rate limits. */
  eventLimitExceptions: MatchList;
  /** smtpd_forbid_bare_newline_exclusions: bare <LF> is never refused from these clients. */
  bareNewlineExclusions: MatchList;
  /** Close the tables the lists opened. */
  close(): void;
}

export function compileNetworks(cfg: Config, log: Logger): SmtpdNetworks {
  const parentParams = new Set(cfg.list('parent_domain_matches_subdomains'));
  const tables = new Map<string, LookupTable>();
  const open = (ref: string): LookupTable => {
    let t = tables.get(ref);
    if (!t) {
      t = openTable(ref, { baseDir: cfg.dir, warn: (m) => log.warning(m) });
      tables.set(ref, t);
    }
    return t;
  };
  const close = () => {
    for (const t of tables.values()) t.close();
    tables.clear();
  };
  const compile = (param: string) =>
    MatchList.compile(cfg.list(param), { param, parentMatch: parentParams.has(param), openTable: open, baseDir: cfg.dir });
  try {
    return {
      eventLimitExceptions: compile('smtpd_client_event_limit_exceptions'),
      bareNewlineExclusions: compile('smtpd_forbid_bare_newline_exclusions'),
      close,
    };
  } catch (err) {
    close();
    throw err;
  }
}

/**
 * Is the client (verified name, address) in the list? A table that fails answers "no", with a
 * warning: the limits and the bare <LF> rule then apply, as they would without the exception.
 */
export async function clientListed(list: MatchList, name: string, addr: string, log: Logger): Promise<boolean> {
  if (list.empty) return false;
  try {
    return await list.match(name, addr);
  } catch (err) {
    log.warning(`${list.param}: lookup of ${name}[${addr}] failed: ${(err as Error).message}`);
    return false;
  }
}
