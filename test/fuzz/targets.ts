// Fuzz targets for test/fuzz/*.test.ts, loaded by the fuzzer's worker (fuzz.ts). Each target
// feeds one input to a parser and checks the outcome's shape: a result, or an Error whose message
// names the file and line (file parsers); anything else is thrown as a FuzzProblem. Trusts the
// corpora only as seeds.

import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMainCf, parseMasterCf, Config, ConfigValueError, validateConfig, PARAMS, type Diagnostic } from '../../src/config/index.js';
import { openTable, compileSource, TABLE_TYPES, LmdbDict, lmdbFormat } from '../../src/tables/index.js';
import { FuzzProblem, unexpectedType, Rng, type FuzzTarget } from './fuzz.js';
import { repoRoot } from '../helpers/cli.js';

// The corpora live in the source tree, also when the compiled tests (dist/test) run.
const read = (p: string): string => readFileSync(join(repoRoot, p), 'utf8');

const MAIN_CF = [read('test/fixtures/seed/main.cf'), read('example/main.cf')];
const MASTER_CF = [
  read('example/master.cf'),
  'smtp      inet  n       -       n       -       -       smtpd\n  -o smtpd_tls_security_level=may\n  -o { smtpd_client_restrictions = permit_mynetworks, reject }\n',
  '[::1]:2525 inet n - n - 100 smtpd -o smtpd_helo_required=yes\npickup unix n - n 60 1 pickup\n127.0.0.1:smtp inet n - - - - smtpd\n',
];
const CONFIG_DICT = [
  '$', '${', '$(', '}', ')', '${myhostname}', '$mydomain', '${a?b}', '${a:b}', '${a?{x}:{y}}', '$$', '=', ' = ', '\n ', '\n#', ',',
  'yes', 'no', '10s', '5d', '3w', '1h', '-1', '999999999999999999999', '0x10', '1e3', '450', '577', '5xx', 'hash:', 'cidr:{ {1.2.3.4 OK} }',
  'inline:{ a=b }', 'maximal_queue_lifetime', 'message_size_limit', 'smtpd_recipient_restrictions', 'unverified_recipient_reject_code',
  'mynetworks', 'relay_domains', 'myhostname', 'address_verify_sender', 'double_bounce_sender', '-o', 'inet', 'unix', 'smtpd', '[::1]:25',
  '127.0.0.1:', ':2525', 'smtp', '65536', 'constructor', '__proto__', 'toString', 'hasOwnProperty',
];

const MAIN = '/etc/backstop/main.cf';
const MASTER = '/etc/backstop/master.cf';

function checkDiagnostics(ds: Diagnostic[], files: string[], allowLine0: boolean): void {
  for (const d of ds) {
    if (!files.includes(d.file)) throw new FuzzProblem(`diagnostic names file "${d.file}": ${d.message}`);
    if (!Number.isInteger(d.line) || d.line < 0 || (d.line === 0 && !allowLine0)) throw new FuzzProblem(`diagnostic without a line: ${d.message}`);
    if (!d.message) throw new FuzzProblem('diagnostic with an empty message');
  }
}

/** A getter may fail only with a ConfigValueError naming the file and line of a parameter set in main.cf. */
function tryGetter(config: Config, name: string, get: () => unknown): void {
  try {
    get();
  } catch (err) {
    const t = unexpectedType(err);
    if (t) throw new FuzzProblem(`Config getter for ${name}: ${t}`);
    if (!(err instanceof ConfigValueError)) throw new FuzzProblem(`Config getter for ${name} threw ${(err as Error).constructor.name}: ${(err as Error).message}`);
    const o = config.origin(name);
    if (o && !(err.message.startsWith(`${o.file}, line ${o.line}: `))) throw new FuzzProblem(`error without file and line: ${err.message}`);
  }
}

const REGISTRY_SAMPLE = [...PARAMS.keys()];

/** main.cf: parseMainCf, every Config getter and expandText, validateConfig. */
export const mainCf: FuzzTarget = {
  corpus: MAIN_CF,
  dict: CONFIG_DICT,
  run(input) {
    const parsed = parseMainCf(input, MAIN);
    checkDiagnostics(parsed.diagnostics, [MAIN], false);
    const config = new Config(parsed.entries, '/etc/backstop');
    const rng = new Rng(input.length);
    const names = [...parsed.entries.keys()].slice(0, 40);
    for (let i = 0; i < 10; i++) names.push(rng.pick(REGISTRY_SAMPLE));
    for (const name of names) {
      tryGetter(config, name, () => config.str(name));
      tryGetter(config, name, () => config.int(name));
      tryGetter(config, name, () => config.bool(name));
      tryGetter(config, name, () => config.time(name));
      tryGetter(config, name, () => config.size(name));
      tryGetter(config, name, () => config.code(name));
      tryGetter(config, name, () => config.list(name));
    }
    const some = [...parsed.entries.values()];
    if (some.length) {
      const text = rng.pick(some).value;
      try {
        config.expandText(text, { rbl_code: '554' });
      } catch (err) {
        const t = unexpectedType(err);
        if (t) throw new FuzzProblem(`expandText: ${t}`);
      }
    }
    const master = parseMasterCf(MASTER_CF[0], MASTER);
    const ds = validateConfig(
      { config, services: master.smtpd, diagnostics: [], mainCfPath: MAIN, masterCfPath: MASTER },
      { tableTypes: TABLE_TYPES },
    );
    checkDiagnostics(ds, [MAIN, MASTER], true);
  },
};

/** master.cf: parseMasterCf, then validateConfig with its -o overrides on the seed's main.cf. */
export const masterCf: FuzzTarget = {
  corpus: MASTER_CF,
  dict: CONFIG_DICT,
  run(input) {
    const parsed = parseMasterCf(input, MASTER);
    checkDiagnostics(parsed.diagnostics, [MASTER], false);
    for (const s of parsed.smtpd) {
      if (s.file !== MASTER || !(s.line >= 1)) throw new FuzzProblem(`service without file and line: ${JSON.stringify(s)}`);
    }
    const main = parseMainCf(MAIN_CF[0], MAIN);
    const ds = validateConfig(
      { config: new Config(main.entries, '/etc/backstop'), services: parsed.smtpd, diagnostics: [], mainCfPath: MAIN, masterCfPath: MASTER },
      { tableTypes: TABLE_TYPES },
    );
    checkDiagnostics(ds, [MAIN, MASTER], true);
  },
};

// ---- tables ----

const TABLE_CORPUS: Record<string, string[]> = {
  cidr: [
    '# clients\n192.168.0.0/16 OK\n10.0.0.1 REJECT go away\n!127.0.0.0/8 DUNNO\n2001:db8::/32 REJECT v6\n[::1] OK\n',
    'if 10.0.0.0/8\n10.1.0.0/16 OK\nif !10.1.2.0/24\n  10.1.3.4 REJECT\nendif\nendif\n0.0.0.0/0 DUNNO\n::/0 DUNNO\n010.0.0.1 OK\n',
  ],
  regexp: [
    '/^(.*)@example\\.com$/ REJECT $1 is not welcome\n!/\\.org$/ DUNNO\nif /^a/\n/b/ OK ${1}\nendif\n|x|y+| OK\n/^(a)(b)?$/ FILTER $(2)x$$\n',
    '/pat/i OK\n/multi\n  line/ OK\n/[[:alpha:]]/ OK\n',
  ],
  pcre: [
    '/^(.*)@example\\.com$/A REJECT $1\n/ a b # comment\n c /x OK\n/^x.$/s OK\n/e$/E DUNNO\nif !/^z/\n/q/ OK\nendif\n',
    '/(?<name>a+)b/ OK\n/\\d{1,3}(\\.\\d{1,3}){3}/ REJECT ip\n',
  ],
  texthash: [
    '# access\nexample.com OK\nuser@example.org REJECT no\n  continued here\nkeyonly\nExample.COM duplicate\n',
    'a\tb\n\n\n c\nd e f\n',
  ],
  hash: ['joe@example.com OK\n.example.net REJECT\n'],
  inline: ['a=b, c = d, { e = f g }, h=', '{ x = y }'],
};
const TABLE_DICT = [
  '/', '!', '(', ')', '(?', '[', ']', '{', '}', '\\', '$1', '${9}', '$(', '$$', 'if ', 'endif', '\n', ' ', '/i', '/x', '/A', '/U',
  '::', '/33', '/129', '255.255.255.255', '1.2.3.4', '::ffff:1.2.3.4', '[', ']', '*', '+', '?', '{1,', '|', '.*', '(a+)+', '\\1', '=',
  '#', ',', '\t', '%', '\ud800', '\u0000',
];

const KEYS = ['1.2.3.4', '10.1.3.4', '::1', '2001:db8::1', 'joe@example.com', 'a', 'ab', 'Example.COM', 'x', '', '192.168.1.1', 'aaaaaaaaab'];

function tableTarget(type: string): FuzzTarget {
  let dir = '';
  let n = 0;
  return {
    corpus: TABLE_CORPUS[type],
    dict: TABLE_DICT,
    setup() {
      dir = mkdtempSync(join(tmpdir(), 'backstop-'));
    },
    teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
    run(input) {
      const path = join(dir, `t${n++}`);
      let ref: string;
      if (type === 'inline') {
        ref = `inline:{ ${input} }`;
      } else {
        writeFileSync(path, input);
        ref = `${type}:${path}`;
      }
      const isFileError = (msg: string): boolean => msg.includes(path) && /, line [1-9][0-9]*: /.test(msg);
      try {
        if (type === 'hash') compileSource(path, () => {});
        const t = openTable(ref, { checkIntervalMs: 1e9 });
        try {
          const words = input.split(/[\s/=,{}]+/).filter(Boolean).slice(0, 6).map((w) => w.slice(0, 24));
          for (const k of [...KEYS, ...words]) {
            try {
              t.get(k);
            } catch (err) {
              throw new FuzzProblem(`lookup of "${k}" threw ${unexpectedType(err) ?? (err as Error).message}`);
            }
          }
          if (t.entries) for (const e of t.entries()) if (typeof e[0] !== 'string' || typeof e[1] !== 'string') throw new FuzzProblem('entries() gave a non-string');
        } finally {
          t.close();
        }
      } catch (err) {
        if (err instanceof FuzzProblem) throw err;
        const t = unexpectedType(err);
        if (t) throw new FuzzProblem(`${type}: ${t}`);
        const msg = (err as Error).message;
        if (type === 'inline' ? !msg.includes(ref) : !isFileError(msg)) throw new FuzzProblem(`${type}: error does not name the file and line: ${msg}`);
      } finally {
        if (type !== 'inline') {
          rmSync(path, { force: true });
          rmSync(path + '.lmdb', { force: true });
          rmSync(path + '.lmdb-lock', { force: true });
        }
      }
    },
  };
}

export const cidrTable = tableTarget('cidr');
export const regexpTable = tableTarget('regexp');
export const pcreTable = tableTarget('pcre');
export const texthashTable = tableTarget('texthash');
export const hashTable = tableTarget('hash');
export const inlineTable = tableTarget('inline');

// ---- compiled table files (issue 16) ----

// Binary inputs travel as latin1 strings (one character per byte). The seeds are whole files of
// every kind a table path may hold — LMDB in both data formats, Postfix's Berkeley DB hash and
// btree — and our own format cut at several offsets; the fuzzer adds random bytes and mutations.
const bin = (p: string): string => readFileSync(join(repoRoot, 'test/tables/fixtures', p)).toString('latin1');
const OWN = bin(lmdbFormat() === '0.9' ? 'postfix-lmdb09.lmdb' : 'lmdbjs-10.lmdb');
const FILE_CORPUS = [
  OWN,
  bin('postfix-lmdb09.lmdb'),
  bin('lmdbjs-10.lmdb'),
  bin('postfix-hash.db'),
  bin('postfix-btree.db'),
  '',
  ...[16, 100, 4096, 8192, 8200, 12287].map((n) => OWN.slice(0, n)),
];

/**
 * A compiled table's `.lmdb` file: open it as hash:, look up, list, delete a key (a write
 * transaction reads the free-page tree). A file must either work or fail with an error that names
 * it; a crash in LMDB's C code kills the fuzzer and the test run, which is the failure we look for.
 */
export const lmdbFile: FuzzTarget = (() => {
  let dir = '';
  let n = 0;
  return {
    corpus: FILE_CORPUS,
    dict: ['\u00de\u00c0\u00ef\u00be', '\u0000', '\u00ff\u00ff\u00ff\u00ff', '\u0001\u0000', '\u0002\u0000', '\u0010'],
    setup() {
      dir = mkdtempSync(join(tmpdir(), 'backstop-'));
    },
    teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
    run(input) {
      const path = join(dir, `t${n++}`);
      writeFileSync(path, 'a@example.com OK\n');
      writeFileSync(path + '.lmdb', Buffer.from(input, 'latin1'));
      try {
        const t = openTable(`hash:${path}`, { checkIntervalMs: 1e9 });
        try {
          for (const k of ['a@example.com', 'spam.example', 'zzz', 'user5@example.com']) t.get(k);
          for (const e of t.entries!()) if (typeof e[0] !== 'string' || typeof e[1] !== 'string') throw new FuzzProblem('entries() gave a non-string');
        } finally {
          t.close();
        }
        const d = LmdbDict.open(path + '.lmdb', { create: false });
        try {
          d.del('a@example.com');
        } finally {
          d.close();
        }
      } catch (err) {
        if (err instanceof FuzzProblem) throw err;
        const t = unexpectedType(err);
        if (t) throw new FuzzProblem(`lmdb file: ${t}`);
        if (!(err as Error).message.includes(path)) throw new FuzzProblem(`lmdb file: error does not name the file: ${(err as Error).message}`);
      } finally {
        rmSync(path, { force: true });
        rmSync(path + '.lmdb', { force: true });
        rmSync(path + '.lmdb-lock', { force: true });
      }
    },
  };
})();
