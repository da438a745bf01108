#!/usr/bin/env node
// The `backstop` command: runs the compiled entry point (npm ci / npm start / npm test build it).
// Queue writes fsync a file and its folder for every accepted message; libuv runs those in its
// thread pool (4 threads by default), so concurrent sessions would queue behind each other's
// fsyncs. More threads let the disk's own journal merge them. Set before the pool starts.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { main } = await import('../dist/src/main.js');

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error(`backstop: fatal: ${err?.message ?? err}`); process.exitCode = 1; },
);
