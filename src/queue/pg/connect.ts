// How a process reaches the queue database: the node-postgres options for one host of the
// configuration (TLS as libpq's sslmode, timeouts, application_name), and a single dedicated
// connection to the primary — the hosts in order, a server in recovery (a standby) passed over,
// each attempt bounded by connect_timeout. The store's pool (store.ts) uses the options; the
// connection slots (slots.ts) and the administrator's commands (admin.ts, showq.ts through the
// CLI) use a dedicated connection. Trusts its configuration.

import pg from 'pg';
import type { ClientConfig } from 'pg';
import type { PgConfig, PgHost } from './config.js';

/** node-postgres options for `h`, shared by pools and single connections. */
export function clientConfig(cfg: PgConfig, h: PgHost): ClientConfig {
  const ssl =
    cfg.sslmode === 'disable'
      ? undefined
      : {
          rejectUnauthorized: cfg.sslmode !== 'require',
          ca: cfg.sslrootcert,
          cert: cfg.sslcert,
          key: cfg.sslkey,
          // verify-ca checks the chain but not the name, as libpq does.
          ...(cfg.sslmode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
        };
  return {
    host: h.host,
    port: h.port,
    database: cfg.dbname,
    user: cfg.user,
    password: cfg.password,
    ssl,
    connectionTimeoutMillis: cfg.connectTimeoutMs,
    query_timeout: cfg.queryTimeoutMs,
    application_name: 'backstop',
  };
}

/** "127.0.0.1:5432, [::1]:5433": the hosts, for messages. */
export function hostList(cfg: PgConfig): string {
  return cfg.hosts.map((h) => (h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`)).join(', ');
}

/**
 * One connection of its own to the primary (the caller ends it). Rejects, naming every host and
 * why it was passed over, when none is a reachable primary. `keepAlive` lets a long-lived
 * connection notice a peer that vanished without closing it.
 */
export async function connectPrimary(cfg: PgConfig, opts: { keepAlive?: boolean; applicationName?: string } = {}): Promise<pg.Client> {
  const why: string[] = [];
  for (const h of cfg.hosts) {
    const client = new pg.Client({ ...clientConfig(cfg, h), keepAlive: opts.keepAlive ?? false, application_name: opts.applicationName ?? 'backstop' });
    // Until the caller attaches its own: an error on an idle connection must not crash the process.
    client.on('error', () => undefined);
    const name = hostList({ ...cfg, hosts: [h] });
    try {
      await client.connect();
      const r = await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby');
      if (!r.rows[0].standby) return client;
      why.push(`${name}: a standby`);
    } catch (err) {
      why.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
    await client.end().catch(() => undefined);
  }
  throw new Error(`queue database unreachable (${why.join('; ')})`);
}
