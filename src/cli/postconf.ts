// `backstop postconf [-c DIR] [-n | -d] [-h] [-x] [name ...]`: print parameters as `name = value`,
// sorted, exactly as Postfix's postconf does. -n: only parameters set in main.cf; -d: defaults;
// -h: values without the label; -x: expanded values. Unknown names get Postfix's warning. Reads the files, never the server.

import { loadConfig, paramDef, PARAMS, formatDiagnostic, ConfigValueError } from '../config/index.js';
import { invoke, type CommandSpec, type ParsedArgs } from './args.js';
import type { CommandIo } from './io.js';

export const postconfSpec: CommandSpec = {
  name: 'postconf',
  summary: 'print configuration parameters as `name = value`, as Postfix does',
  synopsis: '[-c DIR] [-n | -d] [-h] [-x] [name ...]',
  options: {
    nondefault: { type: 'boolean', short: 'n', help: 'print only parameters set in main.cf' },
    defaults: { type: 'boolean', short: 'd', help: 'print default values' },
    'values-only': { type: 'boolean', short: 'h', help: 'print values only, without the `name = ` label' },
    expand: { type: 'boolean', short: 'x', help: 'expand $name in values' },
  },
  usageError: (message, err) => (err(`postconf: fatal: ${message}; usage: postconf [-c config_dir] [-n | -d] [-h] [-x] [name ...]\n`), 1),
};

export async function runPostconf(args: ParsedArgs, io: CommandIo): Promise<number> {
  const opts = { n: args.values.nondefault === true, d: args.values.defaults === true, x: args.values.expand === true, h: args.values['values-only'] === true };
  const loaded = loadConfig(io.configDir);
  const { config } = loaded;
  // -d needs no main.cf at all (defaults only).
  if (!opts.d) for (const d of loaded.diagnostics) if (d.severity === 'error') io.stderr(`postconf: ${formatDiagnostic(d)}\n`);

  const names = args.positionals;
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
    io.stdout(opts.h ? `${value}\n` : value === '' ? `${name} =\n` : `${name} = ${value}\n`);
  }
  return status;
}

/** `postconf ARGS...` as typed on the command line. */
export function postconfCommand(argv: string[], io: CommandIo): Promise<number> {
  return invoke(postconfSpec, argv, io, (args) => runPostconf(args, io));
}
