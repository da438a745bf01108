// The side-by-side fidelity harness: one isolated Postfix 3.7 instance (bench/harness/postfix.ts)
// and one real `backstop start`, configured alike, each with two listeners — "defaults" (each
// server's own defaults for the parameters where Backstop deliberately differs) and "aligned"
// (both given the same value for those). A dialogue is written once and played against both
// servers over raw sockets; every reply and every smtpd log line of the session is normalised
// (queue ids, sizes of Received: headers, time stamps, pids) and compared.
// Trusts Debian's postfix package and the Backstop build under test; every wait is bounded.
import { connect, type Socket } from 'node:net';
import { startPostfix, type PostfixInstance, type Params } from '../../bench/harness/postfix.js';
import { makeConfigDir, startServer, type RunningServer } from '../helpers/server.js';
import { renderMain } from '../../bench/harness/postfix.js';
import { freePort, sleep } from '../helpers/net.js';

export const MYHOSTNAME = 'mx.fidelity.test';

/** Configuration shared by both servers (Postfix syntax; both read it as written). */
export function sharedParams(): Params {
  return {
    myhostname: MYHOSTNAME,
    mydomain: 'fidelity.test',
    myorigin: '$myhostname',
    mydestination: '',
    relay_domains: 'example.test',
    relay_recipient_maps: 'inline:{ alice@example.test=OK, bob@example.test=OK, carol@example.test=OK, dave@example.test=OK, erin@example.test=OK, frank@example.test=OK }',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.254/32',
    smtpd_peername_lookup: 'no',
    smtpd_error_sleep_time: '0s',
    smtpd_recipient_limit: '5',
    message_size_limit: '20000',
    smtpd_client_restrictions: 'check_client_access inline:{ 127.0.0.77=REJECT }',
    smtpd_helo_restrictions: 'check_helo_access inline:{ { bad.helo.test = REJECT Go away } }',
    smtpd_sender_restrictions: 'check_sender_access inline:{ spammer@bad.test=REJECT, { warn@bad.test = WARN sender looks odd } }',
    smtpd_recipient_restrictions:
      'check_recipient_access inline:{ { temp@example.test = 450 4.2.0 Mailbox busy }, { nope@example.test = REJECT No thanks } }, reject_unauth_destination, permit',
    smtpd_etrn_restrictions: 'check_client_access inline:{ 127.0.0.77=REJECT }',
  };
}

/** The parameters where Backstop's default deliberately differs from Postfix 3.7's. */
export const ALIGNED_OVERRIDES: Params = {
  smtpd_forbid_bare_newline: 'normalize',
  smtpd_forbid_unauth_pipelining: 'yes',
  smtpd_banner: '$myhostname ESMTP Backstop',
};

export type Mode = 'defaults' | 'aligned';

function masterLine(port: number, mode: Mode): string {
  const o = mode === 'aligned' ? Object.entries(ALIGNED_OVERRIDES).map(([k, v]) => `\n  -o { ${k} = ${v} }`).join('') : '';
  return `127.0.0.1:${port} inet n - n - - smtpd${o}`;
}

export interface Target {
  name: 'postfix' | 'backstop';
  ports: Record<Mode, number>;
  /** Everything logged so far. */
  log(): string;
}

export interface Servers {
  postfix: Target;
  backstop: Target;
  stop(): Promise<void>;
}

export async function startServers(): Promise<Servers> {
  const pfPorts = { defaults: await freePort(), aligned: await freePort() };
  const bsPorts = { defaults: await freePort(), aligned: await freePort() };
  let pf: PostfixInstance | undefined;
  let bs: RunningServer | undefined;
  try {
    pf = await startPostfix({
      name: 'fidelity',
      main: {
        ...sharedParams(),
        // Accepted mail goes nowhere: only smtpd's side is compared.
        transport_maps: 'inline:{ example.test=discard: }',
      },
      services: [masterLine(pfPorts.defaults, 'defaults'), masterLine(pfPorts.aligned, 'aligned')],
    });
    const dir = makeConfigDir({
      'main.cf': renderMain({
        queue_directory: 'spool',
        data_directory: 'data',
        ...sharedParams(),
        // Accepted mail waits in the queue (the next hop does not answer): only smtpd is compared.
        transport_maps: 'inline:{ example.test=smtp:[127.0.0.1]:9 }',
        backstop_dns_servers: '127.0.0.1:9',
        backstop_dns_timeout: '1s',
      }),
      'master.cf': `${masterLine(bsPorts.defaults, 'defaults')}\n${masterLine(bsPorts.aligned, 'aligned')}\n`,
    });
    bs = await startServer(dir, bsPorts.aligned);
    const p = pf;
    const b = bs;
    // The readiness probes (a connect and close on each port) are sessions too: let their log
    // lines land before the first dialogue takes its log offset.
    const probesLogged = (log: () => string, n: number) => (log().match(/disconnect from /g)?.length ?? 0) >= n;
    const until = Date.now() + 5000;
    while (Date.now() < until && !(probesLogged(() => b.log(), 1) && probesLogged(() => p.log(), 2))) await sleep(50);
    await sleep(200);
    return {
      postfix: { name: 'postfix', ports: pfPorts, log: () => p.log() },
      backstop: { name: 'backstop', ports: bsPorts, log: () => b.log() },
      async stop() {
        await b.stop();
        b.cleanup();
        await p.stop();
        p.cleanup();
      },
    };
  } catch (err) {
    if (bs) { await bs.stop(); bs.cleanup(); }
    if (pf) { await pf.stop(); pf.cleanup(); }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Dialogues

/** One write and the number of complete replies it should draw (default: one per line sent). */
export interface Step {
  send: string | Buffer;
  replies?: number;
  /** Wait this long (ms) before sending (lets a server see the earlier input as read). */
  pause?: number;
}

export interface Dialogue {
  name: string;
  /** Strings without a line end get CRLF. */
  steps: Array<string | Step>;
  /** Client address to connect from (default 127.0.0.1). */
  from?: string;
  /** Not played in these modes. */
  skip?: Mode[];
}

export interface Transcript {
  replies: string[];
  log: string[];
}

function normStep(s: string | Step): Step {
  if (typeof s !== 'string') return s;
  return { send: /\n$/.test(s) ? s : s + '\r\n' };
}

function countLines(b: string | Buffer): number {
  const s = typeof b === 'string' ? b : b.toString('latin1');
  return s.split('\n').length - 1;
}

/** Reads complete SMTP replies off a socket. */
class ReplyReader {
  private buf = '';
  private replies: string[] = [];
  private current: string[] = [];
  closed = false;
  private wake?: () => void;

  constructor(sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).replace(/\r$/, '');
        this.buf = this.buf.slice(i + 1);
        this.current.push(line);
        if (!/^\d{3}-/.test(line)) {
          this.replies.push(this.current.join('\n'));
          this.current = [];
        }
      }
      this.wake?.();
    });
    const end = () => { this.closed = true; this.wake?.(); };
    sock.on('close', end);
    sock.on('error', end);
  }

  /** Waits for n replies (or the close, or timeoutMs) and returns them. */
  async take(n: number, timeoutMs: number): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length < n && !this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.wake = () => { clearTimeout(t); r(); };
      });
      this.wake = undefined;
    }
    return this.replies.splice(0, n);
  }

  rest(): string[] {
    const out = this.replies.splice(0);
    if (this.current.length) out.push(this.current.join('\n') + ' <partial>');
    return out;
  }
}

/** The smtpd lines of a server's log, normalised, with the per-line prefix removed. */
export function smtpdLines(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /\/smtpd\[\d+\]: (.*)$/.exec(line);
    if (m) out.push(normalise(m[1]));
  }
  return out;
}

/** Queue ids, Postfix's and Backstop's, become QID. */
export function normalise(s: string): string {
  return s
    .replace(/(queued as |^|warning: |id )[0-9A-F]{6,16}\b/g, '$1QID')
    // Postfix opens its queue file at the first accepted RCPT, Backstop at DATA/BDAT: a warning
    // in between names the queue id in one and NOQUEUE in the other (deliberate.ts).
    .replace(/^warning: NOQUEUE: /, 'warning: QID: ');
}

/** Plays a dialogue against one listener; returns the replies and the session's smtpd log lines. */
export async function play(target: Target, mode: Mode, d: Dialogue): Promise<Transcript> {
  const before = target.log().length;
  const sock = connect({ host: '127.0.0.1', port: target.ports[mode], ...(d.from ? { localAddress: d.from } : {}) });
  sock.on('error', () => undefined);
  const reader = new ReplyReader(sock);
  const replies: string[] = [];
  replies.push(...(await reader.take(1, 5000)));
  for (const raw of d.steps) {
    const s = normStep(raw);
    if (reader.closed) break;
    if (s.pause) await sleep(s.pause);
    sock.write(s.send);
    const n = s.replies ?? countLines(s.send);
    replies.push(...(await reader.take(n, 5000)));
  }
  // Whatever else the server says until it closes (every dialogue ends with QUIT or a hang-up).
  const deadline = Date.now() + 3000;
  while (!reader.closed && Date.now() < deadline) await sleep(10);
  replies.push(...reader.rest());
  sock.destroy();
  // The session is over once its disconnect line is logged.
  const end = Date.now() + 5000;
  while (Date.now() < end && !/disconnect from /.test(target.log().slice(before))) await sleep(20);
  await sleep(30);
  return { replies: replies.map(normalise), log: smtpdLines(target.log().slice(before)).filter(compared) };
}

/** The smtpd log lines the suite compares: everything but the connect line. */
function compared(line: string): boolean {
  return !/^connect from /.test(line) && !/^QID: client=/.test(line);
}

// ---------------------------------------------------------------------------------------------
// Comparison

export type Verdict = 'identical' | 'text' | 'code';

export interface LineDiff {
  dialogue: string;
  mode: Mode;
  kind: 'reply' | 'log';
  verdict: Verdict;
  postfix: string;
  backstop: string;
}

function code(s: string): string {
  return /^\d{3}/.exec(s)?.[0] ?? '';
}

/** Pairs the lines of two lists in order; a missing line counts as a different code. */
export function compareLists(dialogue: string, mode: Mode, kind: 'reply' | 'log', a: string[], b: string[]): LineDiff[] {
  const out: LineDiff[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const p = a[i] ?? '<none>';
    const q = b[i] ?? '<none>';
    let verdict: Verdict = 'identical';
    if (p !== q) verdict = kind === 'reply' && code(p) && code(p) === code(q) ? 'text' : kind === 'log' && a[i] !== undefined && b[i] !== undefined ? 'text' : 'code';
    out.push({ dialogue, mode, kind, verdict, postfix: p, backstop: q });
  }
  return out;
}

export function summary(diffs: LineDiff[]): string {
  const r = diffs.filter((d) => d.kind === 'reply');
  const l = diffs.filter((d) => d.kind === 'log');
  const n = (xs: LineDiff[], v: Verdict) => xs.filter((d) => d.verdict === v).length;
  return `replies: ${r.length} compared, ${n(r, 'identical')} identical, ${n(r, 'text')} same code different text, ${n(r, 'code')} different code; ` +
    `log lines: ${l.length} compared, ${n(l, 'identical')} identical, ${n(l, 'text')} different text, ${n(l, 'code')} missing on one side`;
}
