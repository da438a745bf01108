// The `restrictions` validator that `backstop check` and the master hand to validateConfig():
// each smtpd_*_restrictions list is parsed and every restriction built once — which opens its
// tables and checks DNS list filters and policy addresses — then closed again, so a bad name
// fails the check, not a session. Trusts the restriction registry's build functions.

import type { Config } from '../../config/index.js';
import { openTable as openTableReal, type LookupTable } from '../../tables/index.js';
import type { Logger } from '../../log/index.js';
import type { Env } from './context.js';
import { parseElements, type ParsedElement } from './engine.js';
import { RESTRICTIONS } from './restrictions.js';

/**
 * The `restrictions` validator for validateConfig(): parses the list, builds each restriction
 * (which opens its tables and checks DNS list filters and policy addresses), closes them again.
 */
export function restrictionValidator(param: string, elements: string[], config: Config): string[] {
  const classes = new Set(config.list('smtpd_restriction_classes'));
  const problems: string[] = [];
  let parsed: ParsedElement[];
  try {
    parsed = parseElements(elements, classes);
  } catch (err) {
    return [(err as Error).message];
  }
  const tables: LookupTable[] = [];
  const nullLog = { info() {}, warning() {}, error() {}, fatal() {} } as unknown as Logger;
  const env = {
    config, log: nullLog, policies: new Map(), tables: new Map(),
    openTable: (ref: string) => { const t = openTableReal(ref, { baseDir: config.dir }); tables.push(t); return t; },
  } as unknown as Env;
  for (const p of parsed) {
    const def = RESTRICTIONS[p.name];
    if (!def) continue;
    try {
      def.build(p.arg, env);
    } catch (err) {
      problems.push(`${p.name}${p.arg ? ' ' + p.arg : ''}: ${(err as Error).message}`);
    }
  }
  for (const t of tables) t.close();
  for (const c of (env.policies as Map<string, { close(): void }>).values()) c.close();
  return problems;
}
export { restrictionValidator as restrictions };
