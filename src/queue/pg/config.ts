// The queue store's selection and the PostgreSQL store's configuration file.
// backstop_queue_store = file (the default: queue files under queue_directory) or
// postgres:CONFIG_FILE, where the file (in the style of Postfix's pgsql_table(5)) says:
//
//   hosts = db1.example:5432 db2.example    # host[:port] or [ipv6]:port, tried in order
//   dbname = backstop
//   user = backstop
//   password = secret          # or: password_file = /etc/backstop/pg.pass (first line)
//   sslmode = verify-full      # disable | require | verify-ca | verify-full (default disable)
//   sslrootcert = /etc/ssl/certs/db-ca.pem    # CA for verify-ca / verify-full
//   sslcert = ... / sslkey = ...              # client certificate, optional
//   connect_timeout = 5s       # a connection (or a free pooled one) within this, else 451
//   query_timeout = 30s        # one statement's deadline (a hung database is a 451, not a hang)
//   pool_size = 20             # connections per process (each open DATA holds one)
//   node_name = mx2            # this node in the cluster (default: myhostname)
//
// Errors name the file and the line. Trusts nothing in the file; reads password_file and the
// TLS files when the configuration is loaded, so a missing file is a start-up error.

import { readFileSync } from 'node:fs';
import { parseKeyValueLines } from '../../config/index.js';

export type QueueStoreSpec = { kind: 'file' } | { kind: 'postgres'; file: string };

/** backstop_queue_store's value: `file` or `postgres:CONFIG_FILE`. */
export function parseQueueStore(value: string): QueueStoreSpec {
  const v = value.trim();
  if (v === '' || v === 'file') return { kind: 'file' };
  const m = /^postgres:(.+)$/.exec(v);
  if (m) return { kind: 'postgres', file: m[1].trim() };
  throw new Error(`bad value "${value}": expected "file" or "postgres:CONFIG_FILE"`);
}

export type SslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

export interface PgHost {
  host: string;
  port: number;
}

export interface PgConfig {
  hosts: PgHost[];
  dbname: string;
  user: string;
  password?: string;
  sslmode: SslMode;
  /** PEM contents, read when the file is loaded. */
  sslrootcert?: string;
  sslcert?: string;
  sslkey?: string;
  connectTimeoutMs: number;
  queryTimeoutMs: number;
  poolSize: number;
  nodeName?: string;
}

const KNOWN = ['hosts', 'dbname', 'user', 'password', 'password_file', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'connect_timeout', 'query_timeout', 'pool_size', 'node_name'];
const SSL_MODES: readonly SslMode[] = ['disable', 'require', 'verify-ca', 'verify-full'];
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function parseTime(v: string): number | undefined {
  const m = /^([0-9]+)(ms|s|m|h)?$/.exec(v);
  return m ? Number(m[1]) * UNITS[m[2] ?? 's'] : undefined;
}

function parseHost(word: string): PgHost | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+))(?::([0-9]+))?$/.exec(word);
  if (!m) return undefined;
  const port = m[3] ? Number(m[3]) : 5432;
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2], port };
}

function readFileNamed(where: string, key: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`${where}: ${key} ${path}: ${code === 'ENOENT' ? 'No such file or directory' : (err as Error).message}`);
  }
}

/** Parse the configuration file's text; `file` names it in errors. */
export function parsePgConfig(file: string, text: string): PgConfig {
  const cfg: PgConfig = { hosts: [], dbname: '', user: '', sslmode: 'disable', connectTimeoutMs: 5000, queryTimeoutMs: 30_000, poolSize: 20 };
  for (const { key, value, where } of parseKeyValueLines('postgres', file, text)) {
    switch (key) {
      case 'hosts': {
        const words = value.split(/[\s,]+/).filter(Boolean);
        if (words.length === 0) throw new Error(`${where}: hosts is empty`);
        for (const w of words) {
          const h = parseHost(w);
          if (!h) throw new Error(`${where}: bad hosts value "${w}": expected host, host:port or [ipv6]:port`);
          cfg.hosts.push(h);
        }
        break;
      }
      case 'dbname':
      case 'user':
      case 'node_name':
        if (value === '') throw new Error(`${where}: ${key} is empty`);
        if (key === 'node_name') {
          if (!/^[A-Za-z0-9._-]{1,100}$/.test(value)) throw new Error(`${where}: bad node_name "${value}": letters, digits, '.', '_', '-'`);
          cfg.nodeName = value;
        } else cfg[key] = value;
        break;
      case 'password':
        cfg.password = value;
        break;
      case 'password_file':
        cfg.password = readFileNamed(where, key, value).split('\n')[0].replace(/\r$/, '');
        break;
      case 'sslmode':
        if (!SSL_MODES.includes(value as SslMode)) throw new Error(`${where}: bad sslmode "${value}": expected one of ${SSL_MODES.join(', ')}`);
        cfg.sslmode = value as SslMode;
        break;
      case 'sslrootcert':
      case 'sslcert':
      case 'sslkey':
        cfg[key] = readFileNamed(where, key, value);
        break;
      case 'connect_timeout':
      case 'query_timeout': {
        const ms = parseTime(value);
        if (ms === undefined || ms <= 0) throw new Error(`${where}: bad ${key} value "${value}": expected a time such as 5s or 500ms`);
        if (key === 'connect_timeout') cfg.connectTimeoutMs = ms;
        else cfg.queryTimeoutMs = ms;
        break;
      }
      case 'pool_size':
        if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > 1000) throw new Error(`${where}: bad pool_size "${value}": expected 1..1000`);
        cfg.poolSize = Number(value);
        break;
      default:
        throw new Error(`${where}: unknown parameter "${key}" (known: ${KNOWN.join(', ')})`);
    }
  }
  if (cfg.hosts.length === 0) throw new Error(`postgres config ${file}: hosts is required`);
  if (!cfg.dbname) throw new Error(`postgres config ${file}: dbname is required`);
  if (!cfg.user) throw new Error(`postgres config ${file}: user is required`);
  if ((cfg.sslcert === undefined) !== (cfg.sslkey === undefined)) throw new Error(`postgres config ${file}: sslcert and sslkey go together`);
  if (cfg.sslmode.startsWith('verify') && !cfg.sslrootcert) throw new Error(`postgres config ${file}: sslmode ${cfg.sslmode} needs sslrootcert`);
  return cfg;
}

/** Read and parse the configuration file. */
export function loadPgConfig(file: string): PgConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`postgres config ${file}: open: ${code === 'ENOENT' ? 'No such file or directory' : (err as Error).message}`);
  }
  return parsePgConfig(file, text);
}
