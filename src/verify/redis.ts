// The shared verify cache: one Redis server behind several Backstop nodes, so an address
// verified through one node is known to all. address_verify_map = redis:CONFIG_FILE, where the
// file (in the style of Postfix's *_table(5) files) says:
//
//   hosts = 127.0.0.1:6379        # host:port, or [ipv6]:port
//   prefix = backstop:verify:     # key prefix; the rest of the key is Postfix's verify key
//   password = secret             # optional (AUTH)
//   dbnum = 0                     # optional (SELECT)
//   timeout = 2s                  # one command's deadline
//   connect_timeout = 2s          # how long a check waits for a (re)connection
//
// Values are Postfix's `status:probed:updated:text`; entries carry Redis TTLs from the expire
// rules, so Redis forgets what the cleanup would drop. Trusts Redis for storage; a Redis that does
// not answer is an error every caller turns into a temporary failure — never an acceptance.
// ioredis reconnects by itself (capped back-off); commands are not queued while it is away.

import { readFileSync } from 'node:fs';
import { parseKeyValueLines } from '../config/index.js';
import { Redis } from 'ioredis';
import type { VerifyStore } from './store.js';

export interface RedisConfig {
  host: string;
  port: number;
  prefix: string;
  password?: string;
  db: number;
  timeoutMs: number;
  connectTimeoutMs: number;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function parseTime(v: string): number | undefined {
  const m = /^([0-9]+)(ms|s|m|h)?$/.exec(v);
  return m ? Number(m[1]) * UNITS[m[2] ?? 's'] : undefined;
}

/** Parse the config file text; errors name the file and the line. */
export function parseRedisConfig(file: string, text: string): RedisConfig {
  const cfg: RedisConfig = { host: '127.0.0.1', port: 6379, prefix: 'backstop:verify:', db: 0, timeoutMs: 2000, connectTimeoutMs: 2000 };
  for (const { key, value, where } of parseKeyValueLines('redis', file, text)) {
    switch (key) {
      case 'hosts': {
        const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+))(?::([0-9]+))?$/.exec(value);
        const port = m?.[3] ? Number(m[3]) : 6379;
        if (!m || port < 1 || port > 65535) throw new Error(`${where}: bad hosts value "${value}": expected host:port`);
        cfg.host = m[1] ?? m[2];
        cfg.port = port;
        break;
      }
      case 'prefix':
        cfg.prefix = value;
        break;
      case 'password':
        cfg.password = value || undefined;
        break;
      case 'dbnum':
        if (!/^[0-9]+$/.test(value)) throw new Error(`${where}: bad dbnum value "${value}": expected a number`);
        cfg.db = Number(value);
        break;
      case 'timeout':
      case 'connect_timeout': {
        const ms = parseTime(value);
        if (ms === undefined || ms <= 0) throw new Error(`${where}: bad ${key} value "${value}": expected a time such as 2s or 500ms`);
        if (key === 'timeout') cfg.timeoutMs = ms;
        else cfg.connectTimeoutMs = ms;
        break;
      }
      default:
        throw new Error(`${where}: unknown parameter "${key}" (known: hosts, prefix, password, dbnum, timeout, connect_timeout)`);
    }
  }
  return cfg;
}

export class RedisStore implements VerifyStore {
  readonly shared = true;
  private readonly client: Redis;
  private closed = false;
  private lastError: { message: string; code?: string; at: number } | undefined;

  constructor(readonly name: string, readonly cfg: RedisConfig) {
    this.client = new Redis({
      host: cfg.host,
      port: cfg.port,
      password: cfg.password,
      db: cfg.db,
      connectTimeout: cfg.connectTimeoutMs,
      commandTimeout: cfg.timeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Reconnect forever, backing off to one attempt per second.
      retryStrategy: (times: number) => Math.min(50 * times, 1000),
    });
    // Errors surface through the commands; the connection's own errors are remembered so that a
    // refused connection fails checks at once instead of after connect_timeout each.
    this.client.on('error', (err: NodeJS.ErrnoException) => {
      this.lastError = { message: err.message, code: err.code, at: Date.now() };
    });
    this.client.on('ready', () => (this.lastError = undefined));
  }

  /** Wait until connected, at most connect_timeout; throws a clear error otherwise. */
  private async ready(): Promise<void> {
    if (this.client.status === 'ready') return;
    if (this.closed) throw new Error(`${this.name}: store is closed`);
    const e = this.lastError;
    if (e && e.code === 'ECONNREFUSED' && Date.now() - e.at < this.cfg.connectTimeoutMs) {
      throw new Error(`${this.name}: cannot connect to redis server ${this.cfg.host}:${this.cfg.port}: ${e.message}`);
    }
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        this.client.off('error', onError);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => done(new Error(`${this.name}: cannot connect to redis server ${this.cfg.host}:${this.cfg.port} (status ${this.client.status})`)), this.cfg.connectTimeoutMs);
      const onReady = (): void => done();
      // A refused connection is a definite answer: no need to wait out connect_timeout.
      const onError = (err: NodeJS.ErrnoException): void => {
        if (err.code === 'ECONNREFUSED') done(new Error(`${this.name}: cannot connect to redis server ${this.cfg.host}:${this.cfg.port}: ${err.message}`));
      };
      this.client.once('ready', onReady);
      this.client.on('error', onError);
    });
  }

  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    await this.ready();
    try {
      return await fn();
    } catch (err) {
      throw new Error(`${this.name}: redis ${what}: ${(err as Error).message}`);
    }
  }

  async get(key: string): Promise<string | undefined> {
    const v = await this.run('GET', () => this.client.get(this.cfg.prefix + key));
    return v ?? undefined;
  }

  async put(key: string, value: string, ttlSec?: number): Promise<void> {
    const k = this.cfg.prefix + key;
    if (ttlSec !== undefined && ttlSec > 0) await this.run('SET', () => this.client.set(k, value, 'EX', Math.ceil(ttlSec)));
    else await this.run('SET', () => this.client.set(k, value));
  }

  async del(key: string): Promise<void> {
    await this.run('DEL', () => this.client.del(this.cfg.prefix + key));
  }

  async *entries(): AsyncIterable<[string, string]> {
    await this.ready();
    let cursor = '0';
    const pattern = this.cfg.prefix.replace(/[*?[\]\\]/g, '\\$&') + '*';
    do {
      const [next, keys] = await this.run('SCAN', () => this.client.scan(cursor, 'MATCH', pattern, 'COUNT', 500));
      cursor = next;
      if (keys.length) {
        const values = await this.run('MGET', () => this.client.mget(...keys));
        for (let i = 0; i < keys.length; i++) {
          const v = values[i];
          if (v !== null) yield [keys[i].slice(this.cfg.prefix.length), v];
        }
      }
    } while (cursor !== '0');
  }

  /** Remaining TTL of an entry in seconds (-1 none, -2 absent); for tests and `verify show`. */
  async ttl(key: string): Promise<number> {
    return this.run('TTL', () => this.client.ttl(this.cfg.prefix + key));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.disconnect();
  }
}

export function openRedisStore(name: string, file: string): RedisStore {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`address_verify_map ${name}: open ${file}: ${code === 'ENOENT' ? 'No such file or directory' : (err as Error).message}`);
  }
  return new RedisStore(name, parseRedisConfig(file, text));
}
