// main.cf exactly as Postfix reads it: `#` comment lines (also indented ones) are skipped, a line
// that starts with white space continues the previous logical line, `name = value`, the last
// definition wins. Blank lines are ignored. Values are kept unexpanded: expansion is lazy, at use.

import type { Diagnostic } from './diagnostics.js';

export interface Entry {
  name: string;
  value: string;
  file: string;
  /** Line where the logical line starts. */
  line: number;
}

export interface ParsedMainCf {
  /** Last definition of each name wins; insertion order of first definition. */
  entries: Map<string, Entry>;
  diagnostics: Diagnostic[];
}

export function parseMainCf(text: string, file: string): ParsedMainCf {
  const entries = new Map<string, Entry>();
  const diagnostics: Diagnostic[] = [];
  const lines = text.split(/\r?\n/);
  let logical: { text: string; line: number } | null = null;

  const flush = () => {
    if (!logical) return;
    const { text: t, line } = logical;
    logical = null;
    const m = /^([^=\s]+)\s*=\s*([\s\S]*)$/.exec(t);
    if (!m) {
      const name = t.split(/\s/)[0];
      diagnostics.push({ severity: 'error', file, line, message: `missing '=' after attribute name: "${name}"` });
      return;
    }
    const name = m[1];
    if (!/^[A-Za-z0-9_]+$/.test(name)) {
      diagnostics.push({ severity: 'error', file, line, message: `bad parameter name: "${name}"` });
      return;
    }
    // A redefinition replaces the value; Postfix keeps the last one.
    entries.delete(name);
    entries.set(name, { name, value: m[2].trim(), file, line });
  };

  lines.forEach((raw, idx) => {
    const lineNo = idx + 1;
    if (/^\s*#/.test(raw) || /^\s*$/.test(raw)) return;
    if (/^\s/.test(raw)) {
      if (logical) logical.text += ' ' + raw.trim();
      else diagnostics.push({ severity: 'warning', file, line: lineNo, message: 'logical line must not start with white space' });
      return;
    }
    flush();
    logical = { text: raw.trim(), line: lineNo };
  });
  flush();
  return { entries, diagnostics };
}
