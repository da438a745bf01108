// Entry point for running the CLI from TypeScript sources in tests (see cli.ts).
import { main } from '../../src/main.js';

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error(`backstop: fatal: ${err?.message ?? err}`); process.exitCode = 1; },
);
