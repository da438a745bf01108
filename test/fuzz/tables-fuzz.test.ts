// Fuzzes the table parsers (cidr, regexp, pcre, texthash, hash via postmap compile, inline) through openTable,
// and compiled table files (lmdbFile: damaged, truncated, foreign and mutated `.lmdb` files)
// (FUZZ_SECONDS per target, default 3; FUZZ_SEED to change the run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz, describeFailures } from './fuzz.js';

// From compiled tests (npm test) the targets are .js; under tsx they are .ts.
const targets = new URL(import.meta.url.endsWith('.ts') ? './targets.ts' : './targets.js', import.meta.url).href;

for (const name of ['cidrTable', 'regexpTable', 'pcreTable', 'texthashTable', 'hashTable', 'inlineTable', 'lmdbFile']) {
  test(`fuzz ${name}: no crash, no hang, every failure a clear error`, { timeout: 120_000 }, async (t) => {
    const r = await runFuzz(targets, name);
    t.diagnostic(`${name}: ${r.iterations} iterations (seed ${r.seed})`);
    console.log(`fuzz ${name}: ${r.iterations} iterations, seed ${r.seed}`);
    assert.ok(r.iterations > 0);
    assert.equal(r.failures.length, 0, describeFailures(r));
  });
}
