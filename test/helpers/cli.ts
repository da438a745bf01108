// Runs the real `backstop` command as a child process. From the compiled tree (npm test) it runs
// bin/backstop.js; from TypeScript sources (npx tsx --test) it runs the sources through tsx.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const compiled = here.includes(`${'/'}dist${'/'}`);
export const repoRoot = compiled ? join(here, '..', '..', '..') : join(here, '..', '..');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cliCommand(args: string[]): { cmd: string; argv: string[] } {
  return compiled
    ? { cmd: process.execPath, argv: [join(repoRoot, 'bin', 'backstop.js'), ...args] }
    : { cmd: process.execPath, argv: ['--import', 'tsx', join(repoRoot, 'test', 'helpers', 'cli-entry.ts'), ...args] };
}

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const { cmd, argv } = cliCommand(args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: repoRoot, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}
