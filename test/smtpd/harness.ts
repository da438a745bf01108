// Test helper: start smtpd on 127.0.0.1:0 from main.cf text, with a real file-writing sink, a
// small real restriction engine (rejects listed recipients, records what it was asked), and the
// maillog lines it writes captured in memory.

import { Config } from '../../src/config/index.js';
import type { MasterService } from '../../src/config/index.js';
import { maillog, type LogRecord } from '../../src/log/index.js';
import { reply } from '../../src/mail/index.js';
import type { RestrictionEngine, SessionInfo, Verdict } from '../../src/smtpd/check/types.js';
import type { Flusher } from '../../src/smtpd/types.js';
import { startSmtpd, type Smtpd, type ClientNameLookup } from '../../src/smtpd/index.js';
import { FileSink } from './filesink.js';
import { RawClient, type ReplyLines } from '../helpers/smtp-client.js';

/** Rejects RCPT for listed addresses (`554 5.7.1 <a>: Relay access denied`), ETRN for listed domains. */
export class TestEngine implements RestrictionEngine {
  readonly seen: SessionInfo[] = [];
  closed = false;
  constructor(
    readonly deny: Set<string> = new Set(),
    readonly stageReject: Partial<Record<SessionInfo['stage'], Verdict>> = {},
  ) {}
  async check(s: SessionInfo): Promise<Verdict> {
    this.seen.push({ ...s });
    const forced = this.stageReject[s.stage];
    if (forced) return forced;
    if (s.stage === 'rcpt' && s.recipient !== undefined && this.deny.has(s.recipient)) {
      return { action: 'reject', reply: reply(554, '5.7.1', `<${s.recipient}>: Relay access denied`) };
    }
    return { action: 'accept' };
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

export const BASE_MAIN_CF = `
myhostname = mx.backup.test
smtpd_client_event_limit_exceptions =
smtpd_forbid_bare_newline_exclusions =
smtpd_error_sleep_time = 0
`;

export interface Harness {
  smtpd: Smtpd;
  port: number;
  sink: FileSink;
  engine: TestEngine;
  logs: string[];
  open(): Promise<{ c: RawClient; greeting: ReplyLines }>;
  /** Connect, EHLO, return the client. */
  ehlo(name?: string): Promise<RawClient>;
  waitLog(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startHarness(opts: {
  mainCf?: string;
  overrides?: Record<string, string>;
  engine?: TestEngine | ((cfg: Config) => TestEngine);
  flusher?: Flusher;
  dns?: ClientNameLookup;
  sink?: FileSink;
} = {}): Promise<Harness> {
  const config = Config.fromText(BASE_MAIN_CF + (opts.mainCf ?? ''));
  const service: MasterService = {
    service: '127.0.0.1:0', type: 'inet', command: 'smtpd', args: [], overrides: opts.overrides ?? {},
    host: '127.0.0.1', port: 0, file: 'master.cf', line: 1,
  };
  const sink = opts.sink ?? new FileSink();
  const engine = opts.engine ?? new TestEngine();
  const logs: string[] = [];
  const logWaiters: Array<() => void> = [];
  const off = maillog.addSink((r: LogRecord) => {
    if (r.service !== 'smtpd') return;
    logs.push(r.text);
    for (const w of logWaiters.splice(0)) w();
  });
  maillog.open(undefined, { quiet: true });
  const smtpd = await startSmtpd({ config, services: [service], engine, queue: sink, flusher: opts.flusher, dns: opts.dns, closeTimeoutMs: 200 });
  const port = smtpd.addresses()[0].port;
  const h: Harness = {
    smtpd,
    port,
    sink,
    engine: typeof engine === 'function' ? (undefined as unknown as TestEngine) : engine,
    logs,
    open: () => RawClient.open(port),
    async ehlo(name = 'client.test') {
      const { c } = await RawClient.open(port);
      const r = await c.cmd(`EHLO ${name}`);
      if (r.code !== 250) throw new Error(`EHLO failed: ${r.text}`);
      return c;
    },
    async waitLog(re, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = logs.find((l) => re.test(l));
        if (hit) return hit;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no log line matching ${re}; have:\n${logs.join('\n')}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          logWaiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
    },
    async stop() {
      await smtpd.close();
      off();
      if (!opts.sink) sink.cleanup();
    },
  };
  return h;
}
