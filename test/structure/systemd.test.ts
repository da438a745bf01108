// contrib/systemd/backstop.service passes `systemd-analyze verify` (unknown keys, bad values and
// missing commands are reported there), with its ExecStart commands pointed at this checkout's
// bin/backstop.js (the unit names /usr/local/bin/backstop, where `npm install -g` puts it), and
// keeps what the process model needs: started as root, reload through `backstop reload`, the
// hardening docs/install.md describes. Skipped only when systemd-analyze is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/cli.js';

const UNIT = join(repoRoot, 'contrib', 'systemd', 'backstop.service');

function hasAnalyze(): boolean {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function verify(text: string): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-unit-'));
  try {
    const file = join(dir, 'backstop.service');
    writeFileSync(file, text.replaceAll('/usr/local/bin/backstop', join(repoRoot, 'bin', 'backstop.js')));
    const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, output: (r.stdout + r.stderr).trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the unit passes systemd-analyze verify without a warning', { skip: !hasAnalyze() && 'systemd-analyze is not installed (Debian package systemd)' }, () => {
  const r = verify(readFileSync(UNIT, 'utf8'));
  assert.equal(r.output, '', r.output);
  assert.equal(r.status, 0);
});

test('systemd-analyze verify catches a broken unit (the check above can fail)', { skip: !hasAnalyze() && 'systemd-analyze is not installed' }, () => {
  const broken = readFileSync(UNIT, 'utf8').replace('ProtectSystem=strict', 'ProtectSystem=strict\nProtectEverything=yes').replace('ExecReload=/usr/local/bin/backstop reload', 'ExecReload=/nonexistent/backstop reload');
  const r = verify(broken);
  assert.match(r.output, /Unknown key 'ProtectEverything'/);
  assert.notEqual(r.status, 0);
});

test('the unit fits the process model', () => {
  const unit = readFileSync(UNIT, 'utf8');
  const lines = unit.split('\n').filter((l) => !l.startsWith('#'));
  const has = (re: RegExp) => assert.ok(lines.some((l) => re.test(l)), `no line ${re}`);
  has(/^ExecStart=\/usr\/local\/bin\/backstop start$/);
  has(/^ExecReload=\/usr\/local\/bin\/backstop reload$/);
  // The master must start as root (it binds port 25; workers drop to mail_owner themselves).
  assert.ok(!lines.some((l) => /^User=/.test(l)), 'no User=: the master starts as root');
  for (const h of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'PrivateTmp=yes', 'ProtectHome=yes']) has(new RegExp(`^${h}$`));
  has(/^ReadWritePaths=.*\/var\/spool\/backstop/);
  has(/CAP_NET_BIND_SERVICE/);
  has(/CAP_SETUID/);
});
