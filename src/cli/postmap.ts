// `backstop postmap [-q key | -s | -d key] [type:]name` — Postfix's postmap(1) for Backstop tables:
// compile a text source into its LMDB file, query, dump, delete. Plain `name` means `hash:name`
// (Postfix's default_database_type). Relative names resolve against the config directory, the
// same place the server resolves them. Trusts the tables module; prints Postfix-style diagnostics.

import { openTable, parseTableRef, isKnownTableType, COMPILED_TABLE_TYPES, TABLE_TYPES, openCompiledDict, compileSource, resolveTablePath } from '../tables/index.js';

import { invoke, type CommandSpec, type ParsedArgs } from './args.js';
import type { CommandIo } from './io.js';

const USAGE = 'usage: postmap [-q key | -s | -d key] [type:]name';

export const postmapSpec: CommandSpec = {
  name: 'postmap',
  summary: 'compile, query (-q key), dump (-s) or delete (-d key) lookup tables',
  synopsis: '[-c DIR] [-q KEY | -s | -d KEY] [type:]name ...',
  options: {
    query: { type: 'string', short: 'q', value: 'KEY', help: 'print the value of KEY (exit 1 when absent)' },
    dump: { type: 'boolean', short: 's', help: 'print every entry as `key<TAB>value`' },
    delete: { type: 'string', short: 'd', value: 'KEY', help: 'delete KEY (exit 1 when absent)' },
  },
  usageError: (message, err) => (err(`postmap: fatal: ${message}; ${USAGE}\n`), 1),
};

export async function runPostmap(args: ParsedArgs, io: CommandIo): Promise<number> {
  const fatal = (msg: string): number => {
    io.stderr(`postmap: fatal: ${msg}\n`);
    return 1;
  };
  const { query, dump, delete: del } = args.values as { query?: string; dump?: boolean; delete?: string };
  if ([query !== undefined, dump === true, del !== undefined].filter(Boolean).length > 1) return fatal(`options -q, -s and -d are mutually exclusive; ${USAGE}`);
  const mode: 'compile' | 'query' | 'dump' | 'delete' = query !== undefined ? 'query' : del !== undefined ? 'delete' : dump ? 'dump' : 'compile';
  const key = query ?? del;
  const names = args.positionals;
  if (names.length === 0) return fatal(USAGE);
  const warn = (m: string): void => io.stderr(`postmap: warning: ${m}\n`);
  const opts = { baseDir: io.configDir, warn };
  let status = mode === 'compile' || mode === 'dump' ? 0 : 1;
  for (const raw of names) {
    const ref = raw.includes(':') ? raw : `hash:${raw}`;
    try {
      const { type, name } = parseTableRef(ref);
      if (!isKnownTableType(type)) return fatal(`unsupported dictionary type: ${type} (known types: ${TABLE_TYPES.join(', ')})`);
      const compiled = COMPILED_TABLE_TYPES.includes(type);
      switch (mode) {
        case 'compile': {
          if (!compiled) return fatal(`unsupported map type for this operation: ${type} (postmap compiles ${COMPILED_TABLE_TYPES.join(', ')})`);
          compileSource(resolveTablePath(name, opts), warn);
          break;
        }
        case 'query': {
          const table = openTable(ref, opts);
          try {
            const v = await table.get(key!);
            if (v !== undefined) {
              io.stdout(`${v}\n`);
              status = 0;
              // Postfix prints the first match only when querying several tables.
              return 0;
            }
          } finally {
            table.close();
          }
          break;
        }
        case 'dump': {
          const table = openTable(ref, opts);
          try {
            if (!table.entries) return fatal(`table ${ref}: sequential access is not supported for type ${type}`);
            const lines: string[] = [];
            for (const [k, v] of table.entries()) {
              lines.push(`${k}\t${v}\n`);
              if (lines.length >= 4096) io.stdout(lines.splice(0).join(''));
            }
            if (lines.length) io.stdout(lines.join(''));
          } finally {
            table.close();
          }
          break;
        }
        case 'delete': {
          if (!compiled) return fatal(`table ${ref}: delete is not supported for type ${type}`);
          const dict = openCompiledDict(type, resolveTablePath(name, opts));
          try {
            // Keys are stored case-folded, as postmap compiled them.
            if (dict.del(key!.toLowerCase())) status = 0;
          } finally {
            dict.close();
          }
          break;
        }
      }
    } catch (err) {
      return fatal((err as Error).message);
    }
  }
  return status;
}

/** `postmap ARGS...` as typed on the command line. */
export function postmapCommand(argv: string[], io: CommandIo): Promise<number> {
  return invoke(postmapSpec, argv, io, (args) => runPostmap(args, io));
}
