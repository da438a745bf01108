// The command line as people expect it, through the real `backstop` binary: --help prints usage
// on standard output, exits 0 and does nothing else; an unknown command or option is one line
// and exit 2; -c DIR works before and after the command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { makeConfigDir } from '../helpers/server.js';

function configDir(): string {
  return makeConfigDir({ 'main.cf': 'myhostname = cli.example\nqueue_directory = spool\nmaillog_file = /dev/null\n' });
}

const helpCases = [
  { desc: 'backstop --help', args: ['--help'], want: /^usage: backstop \[-c DIR\] <command>/ },
  { desc: 'backstop -h', args: ['-h'], want: /^usage: backstop/ },
  { desc: 'backstop help', args: ['help'], want: /^usage: backstop[\s\S]*postsuper/ },
  { desc: 'backstop help postmap', args: ['help', 'postmap'], want: /^usage: backstop postmap/ },
  { desc: 'backstop start --help', args: ['start', '--help'], want: /^usage: backstop start \[-c DIR\]/ },
  { desc: 'backstop stop --help', args: ['stop', '--help'], want: /^usage: backstop stop/ },
  { desc: 'backstop reload --help', args: ['reload', '--help'], want: /^usage: backstop reload/ },
  { desc: 'backstop postqueue --help', args: ['postqueue', '--help'], want: /^usage: backstop postqueue[\s\S]*-s SITE/ },
  { desc: 'backstop postsuper -d ALL --help (help wins)', args: ['postsuper', '-d', 'ALL', '--help'], want: /^usage: backstop postsuper/ },
  { desc: 'backstop postconf --help', args: ['postconf', '--help'], want: /-h, --values-only|-h {2,}/ },
];

for (const c of helpCases) {
  test(`${c.desc}: usage on stdout, exit 0, nothing done`, async () => {
    const dir = configDir();
    try {
      const r = await runCli([...c.args, '-c', dir], { timeoutMs: 15_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, c.want);
      assert.equal(r.stderr, '');
      // Nothing started, stopped or created: no spool, no pid file.
      assert.equal(existsSync(join(dir, 'spool')), false, 'the command must not run');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

const errorCases = [
  { desc: 'unknown command', args: ['nosuch'], code: 2, want: "backstop: unknown command: nosuch (see 'backstop --help')\n" },
  { desc: "an Object method's name is no command", args: ['toString'], code: 2, want: "backstop: unknown command: toString (see 'backstop --help')\n" },
  { desc: 'unknown global option', args: ['--bogus', 'postconf'], code: 2, want: "backstop: unknown option --bogus (see 'backstop --help')\n" },
  { desc: 'unknown option of a backstop command', args: ['check', '-x'], code: 2, want: "backstop check: unknown option -x (see 'backstop check --help')\n" },
  { desc: 'unknown option of start', args: ['start', '--foreground'], code: 2, want: "backstop start: unknown option --foreground (see 'backstop start --help')\n" },
  { desc: 'stray argument to stop', args: ['stop', 'now'], code: 2, want: "backstop stop: unexpected argument now (see 'backstop stop --help')\n" },
  { desc: 'help for an unknown command', args: ['help', 'nosuch'], code: 2, want: "backstop: unknown command: nosuch (see 'backstop --help')\n" },
  // The Postfix-named commands keep Postfix's prefix and exit status (postqueue: EX_USAGE 64).
  { desc: 'postqueue: unknown option', args: ['postqueue', '-z'], code: 64, want: /^postqueue: fatal: unknown option -z; usage: postqueue -f/ },
  { desc: 'postmap: option without its value', args: ['postmap', '-q'], code: 1, want: /^postmap: fatal: option -q needs a value; usage: postmap/ },
  { desc: 'postconf: unknown option', args: ['postconf', '-z'], code: 1, want: /^postconf: fatal: unknown option -z; usage: postconf/ },
];

for (const c of errorCases) {
  test(`${c.desc}: one line, exit ${c.code}`, async () => {
    const r = await runCli(c.args, { timeoutMs: 15_000 });
    assert.equal(r.code, c.code, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
    if (typeof c.want === 'string') assert.equal(r.stderr, c.want);
    else assert.match(r.stderr, c.want);
  });
}

test('-c DIR before or after the command, and -cDIR', async () => {
  const dir = configDir();
  try {
    for (const args of [['-c', dir, 'postconf', '-n', 'myhostname'], ['postconf', '-n', 'myhostname', '-c', dir], [`-c${dir}`, 'postconf', 'myhostname']]) {
      const r = await runCli(args, { env: { BACKSTOP_CONFIG_DIR: '/nonexistent' } });
      assert.equal(r.stdout, 'myhostname = cli.example\n', `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.code, 0);
    }
    const h = await runCli(['postconf', '-c', dir, '-h', 'myhostname']);
    assert.equal(h.stdout, 'cli.example\n', 'postconf -h prints the value only, as Postfix');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('backstop version', async () => {
  const r = await runCli(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^backstop \d+\.\d+\.\d+\n$/);
});
