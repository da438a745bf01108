// The module map as a test: every import under src/ (type imports included, since a type import
// that runs upward is still a cycle) is read from the sources, and the modules must form no
// cycle, must respect the floors of DESIGN.md/STYLE.md (mail, config, log at the bottom; tables,
// dns above; services above those; master and the commands on top), and smtpd must never reach
// the queue manager or the delivery client. Reads files only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { repoRoot } from '../helpers/cli.js';

const SRC = join(repoRoot, 'src');

/** Lower floors never import higher ones; a module may import its own floor only where listed. */
const FLOOR: Record<string, number> = {
  mail: 0, log: 0, observe: 0, config: 1,
  tables: 2, dns: 2,
  policy: 3, verify: 3, queue: 3, bounce: 3, smtp: 3,
  smtpd: 4, qmgr: 4, control: 4, status: 4,
  // http (the master's listener) sits between the services it reaches (control) and check, which
  // lints its address.
  http: 4.5,
  check: 5,
  master: 6, cli: 6,
  main: 7,
};

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

function moduleOf(file: string): string {
  const rel = relative(SRC, file).split('/');
  return rel.length === 1 ? rel[0].replace(/\.ts$/, '') : rel[0];
}

/** module → module → the first file import seen (for the message). */
function moduleGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  const IMPORT = /^\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]/gm;
  for (const file of sources(SRC)) {
    const from = moduleOf(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const target = resolve(dirname(file), m[1]).replace(/\.js$/, '.ts');
      const to = moduleOf(target);
      if (to === from) continue;
      if (!graph.has(from)) graph.set(from, new Map());
      if (!graph.get(from)!.has(to)) graph.get(from)!.set(to, `${relative(repoRoot, file)} imports ${m[1]}`);
    }
  }
  return graph;
}

test('every module under src/ has a floor', () => {
  const modules = new Set(sources(SRC).map(moduleOf));
  for (const m of modules) assert.ok(m in FLOOR, `src/${m} is not in the module map of this test (and of DESIGN.md)`);
});

test('no import cycle between modules (types included)', () => {
  const graph = moduleGraph();
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (m: string): void => {
    state.set(m, 'open');
    stack.push(m);
    for (const next of graph.get(m)?.keys() ?? []) {
      if (state.get(next) === 'open') {
        const cycle = [...stack.slice(stack.indexOf(next)), next];
        const why = cycle.slice(0, -1).map((a, i) => graph.get(a)!.get(cycle[i + 1]));
        assert.fail(`import cycle ${cycle.join(' → ')}:\n  ${why.join('\n  ')}`);
      }
      if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(m, 'done');
  };
  for (const m of graph.keys()) if (!state.has(m)) visit(m);
});

test('imports point down: no module imports a higher or equal floor', () => {
  const problems: string[] = [];
  for (const [from, tos] of moduleGraph()) {
    for (const [to, where] of tos) {
      if (FLOOR[to] >= FLOOR[from] && !(from === 'cli' && to === 'master')) problems.push(`${from} (floor ${FLOOR[from]}) → ${to} (floor ${FLOOR[to]}): ${where}`);
    }
  }
  assert.deepEqual(problems, []);
});

test('smtpd never imports the queue manager or the delivery client', () => {
  const tos = moduleGraph().get('smtpd') ?? new Map<string, string>();
  assert.deepEqual([...tos].filter(([m]) => m === 'qmgr' || m === 'smtp').map(([, where]) => where), []);
});

test('the import reader finds plain, type-only and re-export imports', () => {
  const IMPORT = /^\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]/gm;
  const text = "import { a } from '../x/index.js';\nimport type {\n  B,\n} from '../y/y.js';\nexport * from './z.js';\n";
  assert.deepEqual([...text.matchAll(IMPORT)].map((m) => m[1]), ['../x/index.js', '../y/y.js', './z.js']);
});
