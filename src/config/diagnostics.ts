// Configuration problems, each naming the file and line, printed as Postfix prints them:
// `error: /etc/backstop/main.cf, line 12: ...` / `warning: ...`.

export interface Diagnostic {
  severity: 'error' | 'warning' | 'note';
  file: string;
  /** 0 when the problem has no line (e.g. a missing file). */
  line: number;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line ? `${d.file}, line ${d.line}` : d.file;
  return `${d.severity}: ${where}: ${d.message}`;
}

export class ConfigError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic).join('\n'));
    this.name = 'ConfigError';
  }
}
