// Host names as Postfix's util/valid_hostname.c judges them, written once: the resolver checks
// PTR answers with it, the restriction engine HELO and sender domains, ETRN its argument.

import net from 'node:net';

/**
 * Postfix's valid_hostname() and numeric-name rule for PTR answers: letters, digits, "-" and
 * "_", no hyphen at either end of a label, not all-numeric. Returns the gripe, or undefined.
 */
export function hostnameProblem(name: string): string | undefined {
  if (net.isIP(name)) return `numeric hostname: ${name}`;
  if (name.length > 255) return `valid_hostname: bad length ${name.length} for ${name.slice(0, 100)}...`;
  const labels = name.split('.');
  for (const label of labels) {
    if (label === '') return `valid_hostname: misplaced delimiter: ${name}`;
    if (label.length > 63) return `valid_hostname: hostname label too long: ${name}`;
    const bad = /[^a-z0-9_-]/i.exec(label);
    if (bad) return `valid_hostname: invalid character ${bad[0].charCodeAt(0)}(decimal): ${name}`;
    if (label.startsWith('-') || label.endsWith('-')) return `valid_hostname: misplaced hyphen: ${name}`;
  }
  if (/^[0-9.]+$/.test(name)) return `numeric hostname: ${name}`;
  return undefined;
}

/** valid_hostname() as a yes/no; one trailing dot (a fully qualified name) is allowed. */
export function validHostname(name: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  return n !== '' && hostnameProblem(n) === undefined;
}
