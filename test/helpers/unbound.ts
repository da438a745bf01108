// A real validating resolver for DNSSEC tests: Debian's unbound on a loopback address and a free
// port, serving test zones from zone files (auth-zone, for-upstream: so every answer goes through
// unbound's validator). A zone can be signed with ldns-signzone (its key becomes a trust anchor),
// left unsigned (no trust anchor: answers are insecure), or signed and then altered (bogus:
// unbound answers SERVFAIL). Everything lives in one temporary folder; close() stops unbound.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, portOpen, sleep } from './net.js';

export interface TestZone {
  /** Zone name without the trailing dot, e.g. "dane.test". */
  name: string;
  /** Resource records relative to the zone ("mx IN A 127.0.0.2"); SOA and NS are added. */
  records: string[];
  /** Sign the zone and trust its key (default true). */
  signed?: boolean;
  /** Change the signed zone text after signing (makes its data bogus). */
  tamper?: (signedText: string) => string;
}

export interface TestUnbound {
  /** "127.0.0.1:PORT", for backstop_dns_servers. */
  server: string;
  close(): Promise<void>;
}

/** Throws, naming the Debian packages, unless unbound and ldns-signzone are installed (.ci/run installs them). */
export function requireUnbound(): void {
  try {
    execFileSync('sh', ['-c', 'command -v ldns-signzone && test -x /usr/sbin/unbound'], { stdio: 'ignore' });
  } catch {
    throw new Error('the DANE tests need unbound and ldns-signzone: apt-get install unbound ldnsutils');
  }
}

export async function startUnbound(zones: TestZone[]): Promise<TestUnbound> {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-unbound-'));
  const port = await freePort('127.0.0.1');
  const anchors: string[] = [];
  const authZones: string[] = [];
  for (const z of zones) {
    const file = join(dir, `${z.name}.zone`);
    writeFileSync(file, [
      `$ORIGIN ${z.name}.`,
      '$TTL 300',
      `@ IN SOA ns.${z.name}. hostmaster.${z.name}. 1 3600 600 86400 300`,
      `@ IN NS ns.${z.name}.`,
      'ns IN A 127.0.0.1',
      ...z.records,
      '',
    ].join('\n'));
    let served = file;
    if (z.signed !== false) {
      const key = execFileSync('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', z.name], { cwd: dir, timeout: 10_000 }).toString().trim();
      execFileSync('ldns-signzone', [file, key], { cwd: dir, timeout: 10_000 });
      served = `${file}.signed`;
      if (z.tamper) writeFileSync(served, z.tamper(readFileSync(served, 'utf8')));
      anchors.push(`  trust-anchor-file: "${join(dir, `${key}.key`)}"`);
    }
    authZones.push(['auth-zone:', `  name: "${z.name}"`, `  zonefile: "${served}"`, '  for-upstream: yes', '  for-downstream: no'].join('\n'));
  }
  const conf = join(dir, 'unbound.conf');
  writeFileSync(conf, [
    'server:',
    `  interface: 127.0.0.1@${port}`,
    '  do-daemonize: no',
    '  username: ""',
    '  chroot: ""',
    `  directory: "${dir}"`,
    `  pidfile: "${join(dir, 'unbound.pid')}"`,
    '  use-syslog: no',
    `  logfile: "${join(dir, 'unbound.log')}"`,
    '  verbosity: 1',
    '  access-control: 127.0.0.0/8 allow',
    '  do-ip6: no',
    '  module-config: "validator iterator"',
    '  local-zone: "test." nodefault',
    '  qname-minimisation: no',
    ...anchors,
    ...authZones,
    'remote-control:',
    '  control-enable: no',
    '',
  ].join('\n'));
  const proc: ChildProcess = spawn('/usr/sbin/unbound', ['-d', '-c', conf], { stdio: 'ignore' });
  let exited = false;
  proc.on('exit', () => { exited = true; });
  for (let i = 0; i < 100 && !exited && !(await portOpen(port, '127.0.0.1', 200)); i++) await sleep(50);
  if (exited || !(await portOpen(port, '127.0.0.1', 500))) {
    proc.kill('SIGKILL');
    let logText = '';
    try { logText = readFileSync(join(dir, 'unbound.log'), 'utf8'); } catch { /* none */ }
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`unbound did not start on 127.0.0.1:${port}\n${logText}`);
  }
  return {
    server: `127.0.0.1:${port}`,
    async close() {
      if (!exited) {
        const gone = new Promise<void>((r) => proc.once('exit', () => r()));
        proc.kill('SIGTERM');
        await Promise.race([gone, sleep(3000)]);
        if (!exited) proc.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
