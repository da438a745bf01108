// The side-by-side fidelity suite: every dialogue of dialogues.ts is played against a real,
// isolated Postfix 3.7 and against Backstop, configured alike (harness.ts), once with each
// server's own defaults and once with Backstop's deliberate defaults given to both. Every reply
// and every smtpd log line must be the same after normalising queue ids; the only differences
// allowed are those deliberate.ts lists, and only with each server's own defaults.
// Prints the summary line (identical / same code different text / different code); with
// FIDELITY_REPORT=FILE set it also writes every difference to FILE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { requireProgram } from '../interop/helpers/peers.js';
import { startServers, play, compareLists, summary, type LineDiff, type Mode } from './harness.js';
import { DIALOGUES } from './dialogues.js';
import { DELIBERATE } from './deliberate.js';

test('fidelity: Backstop answers and logs as Postfix 3.7 does', { timeout: 600_000 }, async () => {
  requireProgram('postfix');
  const servers = await startServers();
  const diffs: LineDiff[] = [];
  try {
    for (const mode of ['aligned', 'defaults'] as Mode[]) {
      for (const d of DIALOGUES) {
        if (d.skip?.includes(mode)) continue;
        const [p, b] = [await play(servers.postfix, mode, d), await play(servers.backstop, mode, d)];
        diffs.push(...compareLists(d.name, mode, 'reply', p.replies, b.replies));
        diffs.push(...compareLists(d.name, mode, 'log', p.log, b.log));
      }
    }
  } finally {
    await servers.stop();
  }
  const line = (['aligned', 'defaults'] as Mode[]).map((m) => `${m}: ${summary(diffs.filter((d) => d.mode === m))}`).join('\n');
  const different = diffs.filter((d) => d.verdict !== 'identical');
  const report = different.map((d) => `[${d.mode}] ${d.dialogue} (${d.kind}, ${d.verdict})\n  postfix:  ${d.postfix.replace(/\n/g, '\n            ')}\n  backstop: ${d.backstop.replace(/\n/g, '\n            ')}`).join('\n');
  console.log(`fidelity summary:\n${line}`);
  if (process.env.FIDELITY_REPORT) writeFileSync(process.env.FIDELITY_REPORT, `${line}\n\n${report}\n`);
  const explained = (d: LineDiff) =>
    DELIBERATE.some((x) => (x.modes ?? ['defaults']).includes(d.mode) && (x.dialogues?.includes(d.dialogue) || x.lines?.(d.postfix, d.backstop)));
  const unexpected = different.filter((d) => !explained(d));
  assert.equal(unexpected.length, 0, `differences from Postfix 3.7 outside deliberate.ts:\n${unexpected.map((d) => `[${d.mode}] ${d.dialogue} (${d.kind})\n  postfix:  ${d.postfix}\n  backstop: ${d.backstop}`).join('\n')}`);
});
