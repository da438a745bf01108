// A real PostgreSQL for a test: initdb into a fresh temporary directory, started with pg_ctl on a
// loopback port from freePort() (and its Unix socket in that directory), with password
// authentication over TCP for the user `backstop`; stop/start (to play a database that goes away
// and comes back), a psql-like query helper, and removal of everything at the end. PostgreSQL
// refuses to run as root: as root, its commands run as the `postgres` system user (created by
// Debian's package) through runuser. Needs Debian's `postgresql` package (.ci/run installs it).
// Every wait is bounded (pg_ctl -w -t).

import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './net.js';

export const PG_USER = 'backstop';
export const PG_PASSWORD = 'test-secret';
export const PG_DB = 'backstop';

/** The newest installed server's binaries: $PG_BINDIR, else /usr/lib/postgresql/<newest>/bin. */
function binDir(): string {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^[0-9]+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  const dir = versions.length ? join(root, versions[0], 'bin') : '';
  if (!dir || !existsSync(join(dir, 'initdb'))) {
    throw new Error('PostgreSQL server binaries not found: install the Debian package "postgresql" (apt-get install postgresql) to run this test');
  }
  return dir;
}

export interface TestPostgres {
  port: number;
  dir: string;
  /** A postgres: configuration file's text for this server (extra lines appended). */
  configText(extra?: string): string;
  stop(): void;
  start(): void;
  /** Run one statement as the test user; the rows. */
  query<T extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** A streaming standby of this server (pg_basebackup), started, named `name` for replication. */
  standby(name: string): Promise<TestPostgres>;
  /**
   * Make this primary's commits wait for standby `name`: set synchronous_standby_names (and any
   * other `settings`), reload, and wait (10 s at most) until pg_stat_replication says `sync`.
   */
  makeSynchronous(name: string, names?: string, settings?: Record<string, string>): Promise<void>;
  /** Promote this standby to a primary (pg_ctl promote, waits). */
  promote(): void;
  /** Stop the server and remove its directory. */
  remove(): void;
}

type Run = (cmd: string, args: string[]) => void;

function runner(bin: string): Run {
  const asRoot = userInfo().uid === 0;
  return (cmd, args) => {
    const argv = asRoot ? ['-u', 'postgres', '--', join(bin, cmd), ...args] : args;
    try {
      execFileSync(asRoot ? 'runuser' : join(bin, cmd), argv, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    } catch (err) {
      const e = err as { stderr?: Buffer; stdout?: Buffer; message: string };
      throw new Error(`${cmd} failed: ${e.stderr?.toString() || e.stdout?.toString() || e.message}`);
    }
  };
}

/** A fresh temporary directory the server's user owns. */
function ownedTempDir(...files: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-pg-'));
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    for (const f of [dir, ...files.map((n) => join(dir, n))]) chownSync(f, uid, gid);
  }
  return dir;
}

/** Start/stop/query/standby for a data directory inside `dir`, listening on `port`. */
function server(run: Run, dir: string, port: number): TestPostgres {
  const data = join(dir, 'data');
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=60 -c shared_buffers=16MB`;
  let running = false;
  const self: TestPostgres = {
    port,
    dir,
    configText: (extra = '') => `hosts = 127.0.0.1:${port}\ndbname = ${PG_DB}\nuser = ${PG_USER}\npassword = ${PG_PASSWORD}\nconnect_timeout = 2s\nquery_timeout = 10s\n${extra}`,
    start() {
      run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-o', opts, '-w', '-t', '30', 'start']);
      running = true;
    },
    stop() {
      run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']);
      running = false;
    },
    async query(sql, params) {
      const c = new pg.Client({ host: dir, port, user: PG_USER, database: PG_DB });
      await c.connect();
      try {
        return (await c.query(sql, params)).rows;
      } finally {
        await c.end();
      }
    },
    async standby(name) {
      const sdir = ownedTempDir();
      const sport = await freePort();
      try {
        run('pg_basebackup', ['-h', dir, '-p', String(port), '-U', PG_USER, '-D', join(sdir, 'data'), '-R', '-X', 'stream', '-c', 'fast']);
        // The standby connects back over the socket (trust), under its name for synchronous_standby_names.
        appendFileSync(join(sdir, 'data', 'postgresql.auto.conf'), `primary_conninfo = 'host=${dir} port=${port} user=${PG_USER} application_name=${name}'\n`);
      } catch (err) {
        rmSync(sdir, { recursive: true, force: true });
        throw err;
      }
      const sb = server(run, sdir, sport);
      sb.start();
      return sb;
    },
    async makeSynchronous(name, names = name, settings = {}) {
      for (const [k, v] of Object.entries({ synchronous_standby_names: names, ...settings })) await self.query(`ALTER SYSTEM SET ${k} = '${v}'`);
      await self.query('SELECT pg_reload_conf()');
      for (let i = 0; ; i++) {
        const r = await self.query<{ s: string }>(`SELECT sync_state AS s FROM pg_stat_replication WHERE application_name = $1`, [name]);
        if (r[0]?.s === 'sync') return;
        if (i >= 100) throw new Error(`standby ${name} not synchronous after 10 s: ${JSON.stringify(r)}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    },
    promote() {
      run('pg_ctl', ['-D', data, '-w', '-t', '30', 'promote']);
    },
    remove() {
      try {
        if (running) self.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return self;
}

export async function startPostgres(): Promise<TestPostgres> {
  const run = runner(binDir());
  const dir = ownedTempDir();
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, PG_PASSWORD + '\n');
  if (userInfo().uid === 0) chownSync(pwfile, statSync(dir).uid, statSync(dir).gid);
  const port = await freePort();
  try {
    run('initdb', ['-D', join(dir, 'data'), '-U', PG_USER, `--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-instructions']);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const srv = server(run, dir, port);
  srv.start();
  // The test database, through the Unix socket (trust).
  const admin = new pg.Client({ host: dir, port, user: PG_USER, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${PG_DB}`);
  await admin.end();
  return srv;
}
