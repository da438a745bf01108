#!/usr/bin/env node
// `npm run build:lmdb` (also run by `npm install`/`npm ci` as postinstall): build the `lmdb`
// package's native binding for LMDB's 0.9 data format — the format of Postfix's lmdb: tables and
// verify cache, and of every distribution's liblmdb — from the sources the package ships
// (dependencies/lmdb-data-v1; its binding.gyp reads LMDB_DATA_V1=true). The package's prebuilt
// binary writes LMDB 1.0's format, which Postfix cannot read and which cannot read Postfix's.
// The package's own loader prefers build/Release over its prebuilt binary, so nothing else
// changes: same binding, same JavaScript API, same lookup code.
//
// Needs a C/C++ compiler, make and python3 (Debian: gcc g++ make python3) and Node's headers
// (found beside the node binary; otherwise node-gyp downloads them). When the build cannot be
// done it says why and exits 0: Backstop then runs on the prebuilt 1.0-format binary, refuses
// Postfix's lmdb: files with a message naming this command, and its own files stay private.
// BACKSTOP_LMDB_FORMAT=1.0 skips the build. Plain JavaScript: it runs before `tsc` (prepare).

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const say = (m) => process.stderr.write(`backstop: ${m}\n`);
const require = createRequire(import.meta.url);

/** The data format the binding in `dir` loads with: '0.9' or '1.0' (lmdb-js's own rule). */
function loadedFormat(dir) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(join(dir, 'node-index.js'))}).then((m) => { const v = m.version; console.log(v.major + v.minor / 100 + v.patch / 10000 < 0.098 ? '0.9' : '1.0'); })`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : `unloadable (${(r.stderr || '').trim().split('\n').slice(-1)[0]})`;
}

function main() {
  if (process.env.BACKSTOP_LMDB_FORMAT === '1.0') {
    say('BACKSTOP_LMDB_FORMAT=1.0: keeping the lmdb package\'s prebuilt binary (LMDB 1.0 data format; lmdb: files are not shared with Postfix)');
    return 0;
  }
  let dir;
  try {
    // The package's exports hide package.json: walk up from its entry point.
    dir = dirname(require.resolve('lmdb'));
    while (!existsSync(join(dir, 'binding.gyp')) && dirname(dir) !== dir) dir = dirname(dir);
    if (!existsSync(join(dir, 'binding.gyp'))) throw new Error('no binding.gyp');
  } catch {
    say('warning: the lmdb package is not installed; run npm ci first');
    return 0;
  }
  if (existsSync(join(dir, 'build', 'Release', 'lmdb.node')) && loadedFormat(dir) === '0.9') return 0;
  const gyp = process.env.npm_config_node_gyp || require.resolve('node-gyp/bin/node-gyp.js', { paths: [dirname(process.execPath) + '/../lib/node_modules/npm/node_modules'] });
  const args = [gyp, 'rebuild'];
  // Node's headers beside the binary (the nodejs.org tarballs, NodeSource, Debian's nodejs-dev):
  // with them the build needs no network.
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node.h'))) args.push(`--nodedir=${prefix}`);
  say(`building the lmdb binding for LMDB's 0.9 data format (Postfix's) in ${dir} ...`);
  const r = spawnSync(process.execPath, args, { cwd: dir, env: { ...process.env, LMDB_DATA_V1: 'true' }, encoding: 'utf8' });
  const format = r.status === 0 ? loadedFormat(dir) : undefined;
  if (format === '0.9') {
    say('lmdb binding built: LMDB 0.9 data format, lmdb: files are shared with Postfix');
    return 0;
  }
  const why = r.status !== 0 ? (r.stderr || r.error?.message || '').trim().split('\n').filter((l) => /error|not found|ERR!/i.test(l)).slice(0, 4).join('\n  ') : `the built binding loads as ${format}`;
  say(`warning: could not build the lmdb binding for LMDB's 0.9 data format:\n  ${why || `node-gyp exited ${r.status}`}\n` +
    'Backstop will use the prebuilt binary (LMDB 1.0 data format): its lmdb:/hash:/btree: files cannot be read by Postfix, and Postfix\'s\n' +
    'lmdb: files are refused with a message. Install gcc, g++, make and python3, then run: npm run build:lmdb');
  return 0;
}

process.exit(main());
