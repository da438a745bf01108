// `backstop postconf [-c DIR] [-n | -d] [-x] [name ...]`: print parameters as `name = value`,
// sorted, exactly as Postfix's postconf does. -n: only parameters set in main.cf; -d: defaults;
// -x: expanded values. Unknown names get Postfix's warning. Reads the files, never the server.

import { Command } from 'commander';
import { loadConfig, paramDef, PARAMS, formatDiagnostic, ConfigValueError } from '../config/index.js';
import type { CommandIo } from './io.js';

export async function postconfCommand(argv: string[], io: CommandIo): Promise<number> {
  const cmd = new Command('postconf')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .option('-c <dir>', 'configuration directory')
    .option('-n', 'print only parameters set in main.cf')
    .option('-d', 'print default values')
    .option('-x', 'expand $name in values')
    .argument('[names...]');
  try {
    cmd.parse(argv, { from: 'user' });
  } catch {
    return 1;
  }
  const opts = cmd.opts<{ c?: string; n?: boolean; d?: boolean; x?: boolean }>();
  const loaded = loadConfig(opts.c ?? io.configDir);
  const { config } = loaded;
  // -d needs no main.cf at all (defaults only).
  if (!opts.d) for (const d of loaded.diagnostics) if (d.severity === 'error') io.stderr(`postconf: ${formatDiagnostic(d)}\n`);

  const names: string[] = cmd.args;
  let selected: string[];
  if (names.length) {
    selected = [];
    for (const n of names) {
      if (paramDef(n) || config.entries.has(n)) selected.push(n);
      else io.stderr(`postconf: warning: ${n}: unknown parameter\n`);
    }
  } else if (opts.n) {
    selected = [...config.entries.keys()].sort();
    for (const n of selected) {
      if (!paramDef(n)) {
        const e = config.entries.get(n)!;
        io.stderr(`postconf: warning: ${e.file}: unused parameter: ${n}=${e.value}\n`);
      }
    }
  } else {
    selected = opts.d ? [...PARAMS.keys()] : config.names();
  }

  let status = 0;
  for (const name of selected) {
    let value: string;
    try {
      if (opts.d) {
        const def = paramDef(name)?.default ?? '';
        value = opts.x ? config.expandText(def) : def;
      } else {
        value = opts.x ? config.str(name) : (config.raw(name) ?? '');
      }
    } catch (err) {
      io.stderr(`postconf: fatal: ${err instanceof ConfigValueError ? err.message : String(err)}\n`);
      status = 1;
      continue;
    }
    io.stdout(value === '' ? `${name} =\n` : `${name} = ${value}\n`);
  }
  return status;
}
