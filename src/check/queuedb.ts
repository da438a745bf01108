// `backstop check`'s look at the PostgreSQL queue store's database (backstop_queue_store =
// postgres:FILE): the one part of the check that talks to the network, and only from the
// command — the master's start-up check (validate.ts) does not wait for a database. It connects
// as the store would (the hosts in order, a standby passed over, connect_timeout per host,
// query_timeout per statement) and warns when a COMMIT, and so a 250, would not wait for a
// synchronous standby (synchronousStandbyProblem), or when no host answers as a primary. Both are
// warnings: the configuration may be right and the database down for now. A file that does not
// parse is check.ts's error, not repeated here.

import { isAbsolute, resolve } from 'node:path';
import type { Config, Diagnostic } from '../config/index.js';
import { connectPrimary, hostList, loadPgConfig, parseQueueStore, synchronousStandbyProblem, type PgConfig } from '../queue/pg/index.js';

export async function checkQueueDatabase(config: Config, mainCf: string): Promise<Diagnostic[]> {
  const at = config.origin('backstop_queue_store') ?? { file: mainCf, line: 0 };
  let pgc: PgConfig;
  try {
    const spec = parseQueueStore(config.str('backstop_queue_store'));
    if (spec.kind === 'file') return [];
    pgc = loadPgConfig(isAbsolute(spec.file) ? spec.file : resolve(config.dir, spec.file));
  } catch {
    return [];
  }
  const warn = (message: string): Diagnostic[] => [{ severity: 'warning', ...at, message: `parameter backstop_queue_store: ${message}` }];
  let db: Awaited<ReturnType<typeof connectPrimary>>;
  try {
    db = await connectPrimary(pgc);
  } catch (err) {
    return warn(`cannot reach the queue database on ${hostList(pgc)}: ${(err as Error).message}`);
  }
  try {
    const problem = await synchronousStandbyProblem(db);
    return problem ? warn(problem) : [];
  } catch (err) {
    return warn(`cannot ask the queue database on ${hostList(pgc)} about its standby: ${(err as Error).message}`);
  } finally {
    await db.end().catch(() => undefined);
  }
}
