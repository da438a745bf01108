// One argument parser for every command: node:util's parseArgs (Node ships it; commander and
// hand-written loops used to share the job and disagreed about -c and --help). Each command
// declares its options as data (CommandSpec); this file parses them, adds the options every
// command takes (-c DIR, --help), prints usage, and turns every parse failure into one line.
// Trusts nothing on the command line.

import { parseArgs } from 'node:util';

export interface OptionSpec {
  type: 'boolean' | 'string';
  short?: string;
  multiple?: boolean;
  /** Placeholder of a string option's value in the help, e.g. `KEY`. */
  value?: string;
  help: string;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

export interface CommandSpec {
  name: string;
  /** One line for `backstop --help`. */
  summary: string;
  /** Argument synopsis after the command name, e.g. `[-n | -d] [-x] [name ...]`. */
  synopsis: string;
  options: Record<string, OptionSpec>;
  /** Longer help after the option list (optional). */
  description?: string;
  /**
   * The Postfix-named commands keep Postfix's way of reporting a usage error (their own message
   * prefix and exit status, e.g. postqueue's EX_USAGE 64); the others say it in one line and
   * exit 2, as Unix commands do.
   */
  usageError?: (message: string, err: (s: string) => void) => number;
}

/** Options every command accepts. `-h` stays free: postconf and postsuper give it Postfix's meaning. */
export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  config: { type: 'string', short: 'c', value: 'DIR', help: 'configuration directory (default $BACKSTOP_CONFIG_DIR, else /etc/backstop)' },
  help: { type: 'boolean', help: 'print this help and exit' },
};

export class UsageError extends Error {
  override name = 'UsageError';
}

/** parseArgs with the command's options plus COMMON_OPTIONS; failures become a one-line UsageError. */
export function parseCommandArgs(spec: CommandSpec, argv: string[]): ParsedArgs {
  const options = { ...COMMON_OPTIONS, ...spec.options };
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(options).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]),
      ),
      strict: true,
      allowPositionals: true,
    });
    return { values: values as ParsedArgs['values'], positionals };
  } catch (err) {
    throw new UsageError(oneLine(err));
  }
}

/** Node's parse errors carry advice over several sentences; keep the first, which names the option. */
function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const unknown = /^Unknown option '([^']+)'/.exec(text);
  if (unknown) return `unknown option ${unknown[1]}`;
  const missing = /^Option '([^ ']+)(?:, ([^ ']+))?(?: <value>)?' argument missing/.exec(text);
  if (missing) return `option ${missing[1]} needs a value`;
  const ambiguous = /^Option '([^ ']+)[^']*' argument is ambiguous/.exec(text);
  if (ambiguous) return `option ${ambiguous[1]} needs a value (write ${ambiguous[1]}VALUE for one that starts with '-')`;
  return text.split(/\.\s/)[0].replace(/\.$/, '');
}

/** `backstop NAME --help`: synopsis, options, description. */
export function commandHelp(spec: CommandSpec): string {
  const rows = Object.entries({ ...spec.options, ...COMMON_OPTIONS }).map(([long, o]) => {
    const flag = [o.short ? `-${o.short}` : '', long === 'help' || !o.short ? `--${long}` : ''].filter(Boolean).join(', ');
    return [`${flag}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`, o.help];
  });
  const width = Math.max(...rows.map(([f]) => f.length));
  return (
    `usage: backstop ${spec.name} ${spec.synopsis}\n\n${spec.summary}\n\noptions:\n` +
    rows.map(([f, h]) => `  ${f.padEnd(width)}  ${h}\n`).join('') +
    (spec.description ? `\n${spec.description.trimEnd()}\n` : '')
  );
}

/** Run the command line as a whole: --help, parse errors (usage), then the command. */
export async function invoke(spec: CommandSpec, argv: string[], out: { stdout(s: string): void; stderr(s: string): void }, run: (args: ParsedArgs) => Promise<number>): Promise<number> {
  // --help anywhere before `--` wins over everything else on the line: print, do nothing else.
  const end = argv.indexOf('--');
  if ((end < 0 ? argv : argv.slice(0, end)).includes('--help')) return (out.stdout(commandHelp(spec)), 0);
  let parsed: ParsedArgs;
  try {
    parsed = parseCommandArgs(spec, argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (spec.usageError) return spec.usageError(err.message, out.stderr);
    out.stderr(`backstop ${spec.name}: ${err.message} (see 'backstop ${spec.name} --help')\n`);
    return 2;
  }
  return run(parsed);
}
