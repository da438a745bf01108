// Shared pieces of the reliability and security battery (issue 6): a loopback "world" (DNS,
// the primary as a sink on 127.0.0.2, a foreign destination's MX as a sink on 127.0.0.55:25),
// the real `backstop start` as a child process with its own environment (fault hooks) and
// SIGKILL, a one-message SMTP sender for load, and env-var knobs (BATTERY_ROUNDS, ...).
// Trusts the helpers in test/helpers; everything else is checked by the tests.
import { spawn } from 'node:child_process';
import { cliCommand, repoRoot } from '../helpers/cli.js';
import { makeConfigDir, startServer, type RunningServer } from '../helpers/server.js';
import type { ZoneSpec } from '../helpers/dnsserver.js';
import { RawClient } from '../helpers/smtp-client.js';

export { makeConfigDir };

/** A number from the environment (by-hand runs), or the CI default. */
export function envInt(name: string, dflt: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : dflt;
}

/**
 * The foreign destination's MX address: nothing Backstop accepts may ever reach it. Each test file
 * that binds port 25 on it uses its own address (files run in parallel).
 */
export const FOREIGN_IP = '127.0.0.55';

/** DNS: primary.test is backed up by us (MX 20 = 127.0.0.1); other.test belongs to somebody else. */
export function worldZone(foreignIp = FOREIGN_IP): ZoneSpec {
  return {
    'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
    'mx1.primary.test': { A: ['127.0.0.2'] },
    'mx2.backup.test': { A: ['127.0.0.1'] },
    'other.test': { MX: [[10, 'mx.other.test']] },
    'mx.other.test': { A: [foreignIp] },
    'sender.test': { MX: [[10, 'mx.sender.test']] },
    'mx.sender.test': { A: ['127.0.0.6'] },
  };
}

/** main.cf lines common to every battery server; `extra` lines are appended (later ones win). */
export function mainCf(dnsServers: string, primaryPort: number, extra: string[] = []): string {
  return [
    'myhostname = mx2.backup.test',
    'mydestination =',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.254/32',
    'queue_directory = spool',
    'data_directory = data',
    `backstop_dns_servers = ${dnsServers}`,
    'backstop_dns_timeout = 1s',
    `transport_maps = inline:{ primary.test=smtp:primary.test:${primaryPort} }`,
    'permit_mx_backup_networks = 127.0.0.2/32',
    'smtpd_relay_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination',
    'smtpd_recipient_restrictions =',
    'backstop_destination_probe_interval = 1s',
    'minimal_backoff_time = 2s',
    'maximal_backoff_time = 4s',
    'queue_run_delay = 1s',
    'smtpd_error_sleep_time = 0s',
    ...extra,
  ].join('\n') + '\n';
}

export type Backstop = RunningServer;

/** Start `backstop start -c dir` with extra environment; waits until the port answers. */
export function startBackstop(dir: string, port: number, env: NodeJS.ProcessEnv = {}, timeoutMs = 20_000): Promise<Backstop> {
  return startServer(dir, port, '127.0.0.1', timeoutMs, env);
}

/** Run `backstop <args>` to completion (start that must fail, check, ...). */
export function runBackstop(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  const { cmd, argv } = cliCommand(args);
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => { clearTimeout(t); resolve({ code, out }); });
  });
}

export interface SendResult {
  /** Final reply of the transaction (DATA end, or the first failing command), or an error text. */
  reply: string;
  code: number;
  /** True only when the end-of-data reply was 250. */
  accepted: boolean;
}

/**
 * One message over one connection: EHLO, MAIL, RCPT..., DATA, content, QUIT. Never throws:
 * connection failures come back as code 0 (the client would retry: not accepted).
 */
export async function sendOne(port: number, from: string, to: string[], body: string, timeoutMs = 10_000): Promise<SendResult> {
  let c: RawClient | undefined;
  try {
    c = await RawClient.connect(port);
    const g = await c.read(timeoutMs);
    if (g.code !== 220) return { reply: g.text, code: g.code, accepted: false };
    for (const line of ['EHLO client.test', `MAIL FROM:<${from}>`, ...to.map((t) => `RCPT TO:<${t}>`), 'DATA']) {
      const r = await c.cmd(line, timeoutMs);
      if (r.code >= 400) return { reply: r.text, code: r.code, accepted: false };
    }
    const content = body.replace(/\r?\n/g, '\r\n');
    c.write(content + (content.endsWith('\r\n') || content === '' ? '' : '\r\n') + '.\r\n');
    const r = await c.read(timeoutMs);
    c.write('QUIT\r\n');
    return { reply: r.text, code: r.code, accepted: r.code === 250 };
  } catch (err) {
    return { reply: (err as Error).message, code: 0, accepted: false };
  } finally {
    setTimeout(() => c?.close(), 50);
  }
}

/** Seeded PRNG (mulberry32) so a failing run can be repeated with BATTERY_SEED. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Several messages over one connection (one transaction each). Returns one result per message;
 * after a connection failure the remaining messages are reported as not accepted (code 0).
 */
export async function sendBatch(port: number, msgs: Array<{ from: string; to: string[]; body: string }>, timeoutMs = 10_000): Promise<SendResult[]> {
  const out: SendResult[] = [];
  let c: RawClient | undefined;
  try {
    c = await RawClient.connect(port);
    const g = await c.read(timeoutMs);
    if (g.code !== 220) throw new Error(g.text);
    await c.cmd('EHLO client.test', timeoutMs);
    for (const m of msgs) {
      let failed: SendResult | undefined;
      for (const line of [`MAIL FROM:<${m.from}>`, ...m.to.map((t) => `RCPT TO:<${t}>`), 'DATA']) {
        const r = await c.cmd(line, timeoutMs);
        if (r.code >= 400) { failed = { reply: r.text, code: r.code, accepted: false }; break; }
      }
      if (failed) {
        out.push(failed);
        await c.cmd('RSET', timeoutMs);
        continue;
      }
      const content = m.body.replace(/\r?\n/g, '\r\n');
      c.write(content + (content.endsWith('\r\n') || content === '' ? '' : '\r\n') + '.\r\n');
      const r = await c.read(timeoutMs);
      out.push({ reply: r.text, code: r.code, accepted: r.code === 250 });
    }
    c.write('QUIT\r\n');
  } catch (err) {
    while (out.length < msgs.length) out.push({ reply: (err as Error).message, code: 0, accepted: false });
  } finally {
    setTimeout(() => c?.close(), 50);
  }
  return out;
}

/** X-Token header value of a delivered message, or -1. */
export function tokenOf(raw: Buffer): number {
  const m = /^X-Token: (\d+)\r$/m.exec(raw.toString('latin1'));
  return m ? Number(m[1]) : -1;
}
