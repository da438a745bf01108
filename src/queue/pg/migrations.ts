// The PostgreSQL queue's schema, created and brought up to date by backstop itself: numbered
// migrations, each applied once with its row in backstop.schema_migrations; all that are due run
// in one transaction (PostgreSQL's DDL is transactional: all of them or none). Several nodes
// starting at once take turns (an advisory lock held by that transaction). Migrations only ever add (tables, columns, indexes): never DROP, never a
// rewrite that loses data — the migrations test checks the SQL for it. A database whose schema is
// newer than this backstop knows is refused (an older node must not write into a schema it does
// not understand). Trusts PostgreSQL for atomicity of each migration.

import type { PoolClient } from 'pg';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** pg_advisory_xact_lock key: "backstop" in ASCII, so other users of the database are unlikely to meet it. */
const LOCK_KEY = 0x6261636b73746f70n;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'queue: nodes, messages, content',
    sql: `
      CREATE TABLE backstop.nodes (
        num serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        first_seen timestamptz NOT NULL DEFAULT now(),
        last_seen timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE backstop.messages (
        id text PRIMARY KEY,
        queue text NOT NULL CHECK (queue IN ('active', 'deferred', 'hold')),
        arrival_time timestamptz NOT NULL,
        committed_at timestamptz NOT NULL DEFAULT now(),
        accepted_by text NOT NULL,
        sender text NOT NULL,
        recipients text[] NOT NULL,
        status text NOT NULL,
        envelope jsonb NOT NULL,
        message_size bigint NOT NULL,
        message_id text,
        chunks integer NOT NULL,
        next_attempt timestamptz NOT NULL DEFAULT now(),
        attempts integer NOT NULL DEFAULT 0,
        lease_node text,
        lease_until timestamptz
      );
      CREATE INDEX messages_due ON backstop.messages (queue, next_attempt);
      CREATE TABLE backstop.content (
        message text NOT NULL REFERENCES backstop.messages (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        seq integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (message, seq)
      );
      -- Mail does not compress well enough to pay for pglz on every chunk.
      ALTER TABLE backstop.content ALTER COLUMN data SET STORAGE EXTERNAL;
    `,
  },
  {
    version: 2,
    name: 'queue manager: per-message delivery state',
    // What the file store keeps in a queue file's journal beyond the status letters: per-recipient
    // results (reason, DSN, remote MTA), the last delay reason, delay warning sent, forced expiry.
    sql: `
      ALTER TABLE backstop.messages ADD COLUMN state jsonb NOT NULL DEFAULT '{}';
    `,
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

export interface MigrationReport {
  /** The schema's version before and after. */
  from: number;
  to: number;
  applied: number[];
}

async function currentVersion(client: PoolClient): Promise<number> {
  const r = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM backstop.schema_migrations');
  return r.rows[0].v ?? 0;
}

/** Bring the schema up to LATEST_VERSION; throws (naming the versions) when the database is newer. */
export async function migrate(client: PoolClient, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationReport> {
  const latest = migrations.length ? migrations[migrations.length - 1].version : 0;
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY.toString()]);
    await client.query('CREATE SCHEMA IF NOT EXISTS backstop');
    await client.query(`CREATE TABLE IF NOT EXISTS backstop.schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const from = await currentVersion(client);
    if (from > latest) {
      throw new Error(`queue database schema is version ${from}, newer than this backstop knows (${latest}): upgrade backstop on this node`);
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= from) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO backstop.schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    await client.query('COMMIT');
    return { from, to: Math.max(from, latest), applied };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
