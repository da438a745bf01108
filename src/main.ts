// `backstop <command>`: the master (start, reload, stop) or one of the administrator's commands.
// Each command parses its own options the way its Postfix namesake does (postconf -n, postmap -q,
// postqueue -p, ...), so this file only dispatches. The configuration directory comes from
// `-c DIR`, else $BACKSTOP_CONFIG_DIR, else /etc/backstop.

import { processIo, type CommandIo } from './cli/io.js';
import { postconfCommand } from './cli/postconf.js';
import { checkCommand } from './cli/check.js';
import { verifyCommand } from './cli/verify.js';
import { postmapCommand } from './cli/postmap.js';
import { postqueueCommand, mailqCommand, type CommandIo as QueueCommandIo } from './cli/postqueue.js';
import { postsuperCommand } from './cli/postsuper.js';
import { loadConfig } from './config/index.js';
import { configPath } from './master/master.js';
import { startMaster, signalMaster, VERSION } from './master/master.js';
import { createApp } from './master/app.js';

type Handler = (argv: string[], io: CommandIo) => Promise<number>;

/** The queue commands want the queue directory from main.cf and stream-style output. */
function withQueue(run: (argv: string[], io: QueueCommandIo) => Promise<number>): Handler {
  return (argv, io) => {
    const { config } = loadConfig(io.configDir);
    return run(argv, {
      stdout: { write: (s: string) => io.stdout(s) },
      stderr: { write: (s: string) => io.stderr(s) },
      configDir: io.configDir,
      queueDirectory: configPath(config, 'queue_directory'),
      stdin: process.stdin,
    });
  };
}

/** Pull `-c DIR` out of argv (any position), as every Postfix command accepts it. */
export function takeConfigDir(argv: string[]): { dir: string; rest: string[] } {
  const rest: string[] = [];
  let dir = process.env.BACKSTOP_CONFIG_DIR || '/etc/backstop';
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-c' && i + 1 < argv.length) dir = argv[++i];
    else if (argv[i].startsWith('-c') && argv[i].length > 2 && !argv[i].startsWith('--')) dir = argv[i].slice(2);
    else rest.push(argv[i]);
  }
  return { dir, rest };
}

const COMMANDS: Record<string, { help: string; run: Handler }> = {
  start: {
    help: 'run the mail system in the foreground',
    run: (_argv, io) => startMaster(io.configDir, { stderr: io.stderr, createApp }),
  },
  reload: { help: 'reload the running mail system (SIGHUP)', run: (_a, io) => signalMaster(io.configDir, 'SIGHUP', io.stderr) },
  stop: { help: 'stop the running mail system (SIGTERM)', run: (_a, io) => signalMaster(io.configDir, 'SIGTERM', io.stderr) },
  check: { help: 'check the configuration, tables and restriction lists (like postfix check)', run: checkCommand },
  verify: { help: 'probe addresses into the verify cache (warm FILE|-, sync) or show an entry (show ADDRESS)', run: verifyCommand },
  postconf: { help: 'print configuration parameters [-n | -d] [-x] [name ...]', run: postconfCommand },
  postqueue: { help: 'list (-p, -j) or flush (-f, -s domain) the mail queue', run: withQueue(postqueueCommand) },
  mailq: { help: 'list the mail queue (postqueue -p)', run: withQueue(mailqCommand) },
  postsuper: { help: 'delete (-d), hold (-h), release (-H) or requeue (-r) queued mail: ID | ALL', run: withQueue(postsuperCommand) },
  postmap: { help: 'compile, query (-q key), dump (-s) or delete (-d key) lookup tables', run: postmapCommand },
};

function usage(io: CommandIo): number {
  io.stderr(`usage: backstop <command> [-c CONFIG_DIR] [options]\n\ncommands:\n`);
  for (const [name, c] of Object.entries(COMMANDS)) io.stderr(`  ${name.padEnd(10)} ${c.help}\n`);
  return 2;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  const { dir, rest } = takeConfigDir(args);
  const io = processIo(dir);
  if (command === '--version' || command === 'version') {
    io.stdout(`backstop ${VERSION}\n`);
    return 0;
  }
  const c = command ? COMMANDS[command] : undefined;
  if (!c) {
    if (command && command !== 'help' && command !== '--help') io.stderr(`backstop: unknown command: ${command}\n`);
    return usage(io);
  }
  return c.run(rest, io);
}
