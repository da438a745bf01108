#!/usr/bin/env node
// The `backstop` command: runs the compiled entry point (npm ci / npm start / npm test build it).
const { main } = await import('../dist/src/main.js');

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error(`backstop: fatal: ${err?.message ?? err}`); process.exitCode = 1; },
);
