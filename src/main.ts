// `backstop [-c DIR] <command> [options]`: the master (start, reload, stop) or one of the
// administrator's commands. The commands are a registry (name → option spec and handler); every
// command's options are parsed by one parser (cli/args.ts), which also gives each command
// `--help` and `-c DIR`. Global options may come before or after the command. The configuration
// directory comes from `-c DIR`, else $BACKSTOP_CONFIG_DIR, else /etc/backstop.

import { COMMON_OPTIONS, commandHelp, invoke, type CommandSpec, type ParsedArgs } from './cli/args.js';
import { processIo, type CommandIo } from './cli/io.js';
import { runPostconf, postconfSpec } from './cli/postconf.js';
import { runCheck, checkSpec } from './cli/check.js';
import { runVerify, verifySpec } from './cli/verify.js';
import { runPostmap, postmapSpec } from './cli/postmap.js';
import { runPostqueue, postqueueSpec, runMailq, mailqSpec, type QueueCommandIo } from './cli/postqueue.js';
import { runPostsuper, postsuperSpec } from './cli/postsuper.js';
import { pgStoreOf, type PgStoreIo } from './cli/pgqueue.js';
import { runStatus, statusSpec } from './cli/status.js';
import { rotateMaillog } from './master/logrotate.js';
import { loadConfig } from './config/index.js';
import { startMaster, signalMaster, VERSION } from './master/master.js';
import { configPath } from './master/paths.js';
import { createApp } from './master/app.js';

type Handler = (args: ParsedArgs, io: CommandIo) => Promise<number>;

/** The queue commands want the queue directory (or the PostgreSQL store) from main.cf and stream-style output. */
function withQueue(run: (args: ParsedArgs, io: QueueCommandIo) => Promise<number>): Handler {
  return (args, io) => {
    const { config } = loadConfig(io.configDir);
    let pgStore: PgStoreIo | undefined;
    try {
      pgStore = pgStoreOf(config);
    } catch (err) {
      io.stderr(`backstop: fatal: parameter backstop_queue_store: ${(err as Error).message}\n`);
      return Promise.resolve(1);
    }
    return run(args, {
      stdout: { write: (s: string) => io.stdout(s) },
      stderr: { write: (s: string) => io.stderr(s) },
      configDir: io.configDir,
      queueDirectory: configPath(config, 'queue_directory'),
      stdin: process.stdin,
      tty: Boolean(process.stderr.isTTY),
      pgStore,
    });
  };
}

/** start, reload and stop take no arguments of their own. */
function serverCommand(name: string, summary: string, run: (io: CommandIo) => Promise<number>): { spec: CommandSpec; run: Handler } {
  return {
    spec: { name, summary, synopsis: '[-c DIR]', options: {} },
    run: async (args, io) => {
      if (args.positionals.length) {
        io.stderr(`backstop ${name}: unexpected argument ${args.positionals[0]} (see 'backstop ${name} --help')\n`);
        return 2;
      }
      return run(io);
    },
  };
}

/** A Map, not an object literal: `backstop toString` must be an unknown command, not Object's method. */
const COMMANDS = new Map<string, { spec: CommandSpec; run: Handler }>(
  [
    serverCommand('start', 'run the mail system in the foreground (SIGHUP reloads, SIGTERM stops)', (io) =>
      startMaster(io.configDir, { stderr: io.stderr, createApp }),
    ),
    serverCommand('reload', 'reload the running mail system (SIGHUP)', (io) => signalMaster(io.configDir, 'SIGHUP', io.stderr)),
    serverCommand('stop', 'stop the running mail system (SIGTERM)', (io) => signalMaster(io.configDir, 'SIGTERM', io.stderr)),
    serverCommand('logrotate', 'rename maillog_file with a date suffix and have every process reopen it (SIGUSR1)', (io) => rotateMaillog(io.configDir, io.stderr)),
    { spec: statusSpec, run: runStatus },
    { spec: checkSpec, run: runCheck },
    { spec: verifySpec, run: runVerify },
    { spec: postconfSpec, run: runPostconf },
    { spec: postmapSpec, run: runPostmap },
    { spec: postqueueSpec, run: withQueue(runPostqueue) },
    { spec: mailqSpec, run: withQueue(runMailq) },
    { spec: postsuperSpec, run: withQueue(runPostsuper) },
  ].map((c) => [c.spec.name, c]),
);

function overview(): string {
  const width = Math.max(...[...COMMANDS.keys()].map((n) => n.length));
  return (
    `usage: backstop [-c DIR] <command> [options]\n\ncommands:\n` +
    [...COMMANDS.values()].map((c) => `  ${c.spec.name.padEnd(width)}  ${c.spec.summary}\n`).join('') +
    `  ${'help'.padEnd(width)}  print this help, or a command's help (help COMMAND)\n` +
    `  ${'version'.padEnd(width)}  print the version\n\n` +
    `options (before or after the command):\n  -c DIR  ${COMMON_OPTIONS.config.help}\n  --help  print help and exit\n\n` +
    `'backstop COMMAND --help' describes a command's options.\n`
  );
}

/** Options before the command: -c DIR, --help, --version. Anything else is a usage error. */
function leadingOptions(argv: string[]): { dir?: string; help?: boolean; version?: boolean; rest: string[]; error?: string } {
  let dir: string | undefined;
  let i = 0;
  for (; i < argv.length && argv[i].startsWith('-') && argv[i] !== '-'; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') return { help: true, rest: [] };
    if (a === '--version' || a === '-V') return { version: true, rest: [] };
    if (a === '-c' || a === '--config') {
      if (i + 1 >= argv.length) return { rest: [], error: `option ${a} needs a value` };
      dir = argv[++i];
    } else if (a.startsWith('--config=')) dir = a.slice('--config='.length);
    else if (a.startsWith('-c') && !a.startsWith('--')) dir = a.slice(2);
    else return { rest: [], error: `unknown option ${a}` };
  }
  return { dir, rest: argv.slice(i) };
}

export async function main(argv: string[], io: { stdout(s: string): void; stderr(s: string): void } = processIo('')): Promise<number> {
  const lead = leadingOptions(argv);
  const hint = `(see 'backstop --help')`;
  if (lead.error) return (io.stderr(`backstop: ${lead.error} ${hint}\n`), 2);
  if (lead.version) return (io.stdout(`backstop ${VERSION}\n`), 0);
  if (lead.help) return (io.stdout(overview()), 0);
  const [command, ...args] = lead.rest;
  if (command === undefined) return (io.stderr(overview()), 2);
  if (command === 'version') return (io.stdout(`backstop ${VERSION}\n`), 0);
  if (command === 'help') {
    // The topic is the first word that is neither an option nor -c's value (`help -c DIR postmap`).
    const topic = args.find((a, i) => !a.startsWith('-') && args[i - 1] !== '-c' && args[i - 1] !== '--config');
    const about = topic === undefined ? undefined : COMMANDS.get(topic);
    if (topic !== undefined && !about) return (io.stderr(`backstop: unknown command: ${topic} ${hint}\n`), 2);
    io.stdout(about ? commandHelp(about.spec) : overview());
    return 0;
  }
  const c = COMMANDS.get(command);
  if (!c) return (io.stderr(`backstop: unknown command: ${command} ${hint}\n`), 2);

  return invoke(c.spec, args, io, (parsed) => {
    const dir = (parsed.values.config as string | undefined) ?? lead.dir ?? (process.env.BACKSTOP_CONFIG_DIR || '/etc/backstop');
    return c.run(parsed, { ...processIo(dir), stdout: io.stdout, stderr: io.stderr });
  });
}
