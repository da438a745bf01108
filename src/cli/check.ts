// `backstop check [-c DIR]`: like `postfix check`, print every problem the configuration check
// (src/check) finds as `backstop/check: error:|warning: FILE, line N: ...` on standard error.
// Exit status 1 when there are errors. With the PostgreSQL queue store it also connects to the
// database (warnings only). Only parses and prints; the checking is src/check's.

import { formatDiagnostic, loadConfig } from '../config/index.js';
import { checkConfig, checkQueueDatabase } from '../check/index.js';
import { invoke, type CommandSpec, type ParsedArgs } from './args.js';
import type { CommandIo } from './io.js';

export const checkSpec: CommandSpec = {
  name: 'check',
  summary: 'check the configuration, tables and restriction lists (like postfix check)',
  synopsis: '[-c DIR]',
  options: {},
};

export async function runCheck(args: ParsedArgs, io: CommandIo): Promise<number> {
  if (args.positionals.length) {
    io.stderr(`backstop check: unexpected argument ${args.positionals[0]} (see 'backstop check --help')\n`);
    return 2;
  }
  const loaded = loadConfig(io.configDir);
  const diagnostics = checkConfig(loaded);
  // The PostgreSQL queue's database: reachable, and does a 250 wait for a synchronous standby?
  diagnostics.push(...(await checkQueueDatabase(loaded.config, loaded.mainCfPath)));
  for (const d of diagnostics) io.stderr(`backstop/check: ${formatDiagnostic(d)}\n`);
  return diagnostics.some((d) => d.severity === 'error') ? 1 : 0;
}

/** `check ARGS...` as typed on the command line. */
export function checkCommand(argv: string[], io: CommandIo): Promise<number> {
  return invoke(checkSpec, argv, io, (args) => runCheck(args, io));
}
