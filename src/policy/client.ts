// Postfix policy delegation client (SMTPD_POLICY_README): `name=value` lines ended by an empty
// line, answered by `action=...` and an empty line, over a persistent inet: or unix: connection.
// Connections are reused (smtpd_policy_service_max_idle, _max_ttl, _request_limit); every
// request has a deadline (_timeout); a failed request is retried (_try_limit, _retry_delay) on a
// fresh connection; when all tries fail the caller gets the default action
// (smtpd_policy_service_default_action, or the per-service `default_action=`).
// Trusts the policy server for nothing but the action text: a malformed reply is a failure.

import net from 'node:net';

export interface PolicyServiceOptions {
  /** `inet:host:port` or `unix:/path`. */
  endpoint: string;
  timeoutMs: number;
  maxIdleMs: number;
  maxTtlMs: number;
  tryLimit: number;
  retryDelayMs: number;
  /** 0 = unlimited. */
  requestLimit: number;
  defaultAction: string;
  /** Sent as policy_context when non-empty. */
  policyContext: string;
  /** Receives `warning:` texts (problems talking to the server). */
  warn?: (text: string) => void;
}

export interface PolicyAnswer {
  action: string;
  /** True when the action is the default action because the service failed. */
  fallback: boolean;
}

interface Conn {
  sock: net.Socket;
  born: number;
  requests: number;
  idleTimer?: NodeJS.Timeout;
  buf: string;
  dead: boolean;
}

/** Parse `inet:host:port` / `unix:path`; throws naming the endpoint. */
export function parseEndpoint(endpoint: string): { kind: 'inet'; host: string; port: number } | { kind: 'unix'; path: string } {
  const inet = /^inet:(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(endpoint);
  if (inet) {
    const port = Number(inet[3]);
    const host = inet[1] ?? inet[2] ?? '';
    if (!host || port < 1 || port > 65535) throw new Error(`bad policy service address: ${endpoint}`);
    return { kind: 'inet', host, port };
  }
  const unix = /^unix:(.+)$/.exec(endpoint);
  if (unix) return { kind: 'unix', path: unix[1] };
  throw new Error(`bad policy service address: ${endpoint} (expected inet:host:port or unix:pathname)`);
}

/** Values may not contain newlines or NULs (SMTPD_POLICY_README); they are removed. */
function clean(v: string): string {
  return v.replace(/[\r\n\0]/g, ' ');
}

export function encodeRequest(attrs: ReadonlyArray<readonly [string, string]>): string {
  return attrs.map(([k, v]) => `${k}=${clean(v)}\n`).join('') + '\n';
}

export class PolicyClient {
  private readonly idle: Conn[] = [];
  private readonly where: ReturnType<typeof parseEndpoint>;
  private closed = false;

  constructor(readonly opts: PolicyServiceOptions) {
    this.where = parseEndpoint(opts.endpoint);
  }

  /** Ask the server; never throws: failures end in the default action. */
  async query(attrs: ReadonlyArray<readonly [string, string]>): Promise<PolicyAnswer> {
    const all = this.opts.policyContext ? [...attrs, ['policy_context', this.opts.policyContext] as const] : attrs;
    const request = encodeRequest(all);
    let lastError = '';
    for (let attempt = 1; attempt <= this.opts.tryLimit && !this.closed; attempt++) {
      try {
        const action = await this.once(request, attempt > 1);
        return { action, fallback: false };
      } catch (err) {
        lastError = (err as Error).message;
        this.opts.warn?.(`problem talking to server ${this.opts.endpoint}: ${lastError}`);
        if (attempt < this.opts.tryLimit) await new Promise((r) => setTimeout(r, this.opts.retryDelayMs));
      }
    }
    this.opts.warn?.(`${this.opts.endpoint}: giving up after ${this.opts.tryLimit} attempt(s); default_action is ${this.opts.defaultAction}`);
    return { action: this.opts.defaultAction, fallback: true };
  }

  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) this.destroy(c);
  }

  private destroy(c: Conn): void {
    c.dead = true;
    if (c.idleTimer) clearTimeout(c.idleTimer);
    c.sock.destroy();
  }

  private take(fresh: boolean): Conn | undefined {
    const now = Date.now();
    while (this.idle.length) {
      const c = this.idle.pop()!;
      if (c.idleTimer) clearTimeout(c.idleTimer);
      if (c.dead || fresh || now - c.born >= this.opts.maxTtlMs) {
        this.destroy(c);
        continue;
      }
      return c;
    }
    return undefined;
  }

  private connect(deadline: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const sock = this.where.kind === 'inet' ? net.connect(this.where.port, this.where.host) : net.connect(this.where.path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error('timeout while connecting'));
      }, Math.max(1, deadline - Date.now()));
      sock.once('connect', () => {
        clearTimeout(timer);
        const c: Conn = { sock, born: Date.now(), requests: 0, buf: '', dead: false };
        sock.on('error', () => { c.dead = true; });
        sock.on('close', () => { c.dead = true; });
        sock.setEncoding('utf8');
        resolve(c);
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`connect: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      });
    });
  }

  private async once(request: string, fresh: boolean): Promise<string> {
    const deadline = Date.now() + this.opts.timeoutMs;
    const c = this.take(fresh) ?? (await this.connect(deadline));
    c.requests++;
    try {
      const reply = await this.exchange(c, request, deadline);
      this.release(c);
      return reply;
    } catch (err) {
      this.destroy(c);
      throw err;
    }
  }

  private release(c: Conn): void {
    const expired = Date.now() - c.born >= this.opts.maxTtlMs;
    const used = this.opts.requestLimit > 0 && c.requests >= this.opts.requestLimit;
    if (this.closed || c.dead || expired || used) {
      this.destroy(c);
      return;
    }
    c.idleTimer = setTimeout(() => {
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
      this.destroy(c);
    }, this.opts.maxIdleMs);
    c.idleTimer.unref();
    this.idle.push(c);
  }

  private exchange(c: Conn, request: string, deadline: number): Promise<string> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (err: Error | null, value?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        c.sock.off('data', onData);
        c.sock.off('close', onClose);
        c.sock.off('error', onError);
        if (err) reject(err);
        else resolve(value!);
      };
      const onData = (chunk: string) => {
        c.buf += chunk;
        const end = c.buf.search(/\r?\n\r?\n/);
        const blank = c.buf.startsWith('\n') ? 0 : end;
        if (blank < 0) {
          if (c.buf.length > 65536) finish(new Error('reply too long'));
          return;
        }
        const text = c.buf.slice(0, blank);
        c.buf = c.buf.slice(blank).replace(/^\r?\n\r?\n?/, '');
        const attrs = new Map<string, string>();
        for (const line of text.split(/\r?\n/)) {
          if (!line) continue;
          const eq = line.indexOf('=');
          if (eq <= 0) return finish(new Error(`malformed reply line: "${line.slice(0, 100)}"`));
          attrs.set(line.slice(0, eq), line.slice(eq + 1));
        }
        const action = attrs.get('action');
        if (action === undefined) return finish(new Error('reply without action attribute'));
        finish(null, action.trim());
      };
      const onClose = () => finish(new Error('lost connection'));
      const onError = (err: Error) => finish(new Error(`${(err as NodeJS.ErrnoException).code ?? err.message}`));
      const timer = setTimeout(() => finish(new Error('timeout')), Math.max(1, deadline - Date.now()));
      if (c.dead || c.sock.destroyed) return finish(new Error('lost connection'));
      c.sock.on('data', onData);
      c.sock.on('close', onClose);
      c.sock.on('error', onError);
      c.sock.write(request);
    });
  }
}
