#!/usr/bin/env node
// `npm run bench`: runs bench/run-all.ts (every benchmark in bench/, then docs/PERFORMANCE.md)
// through tsx, passing on its options (npm run bench -- --only scenario-1 --runs 3 --quick).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench', 'run-all.ts'), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
