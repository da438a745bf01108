// Postfix's TLS protocol lists (smtp_tls_protocols, smtpd_tls_protocols, policy `protocols=`) as
// the version range Node's TLS takes, and a cipher's bits as Postfix prints them. Shared by the
// SMTP client and server; pure.

const PROTOCOLS = ['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
export type NodeTls = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/**
 * Postfix's protocol list (tls_protocol_mask): ">=TLSv1.2", "<=TLSv1.3", "!SSLv3, !TLSv1" or a
 * list of the protocols to allow, as Node's version range. Node takes a range, not a set, so a
 * hole ("!TLSv1.1" alone) widens to the range around it. Throws with Postfix-like text.
 */
export function protocolRange(spec: string): { minVersion: NodeTls; maxVersion: NodeTls } {
  const idx = (p: string): number => {
    const i = PROTOCOLS.findIndex((x) => x.toLowerCase() === p.toLowerCase());
    if (i < 0) throw new Error(`invalid TLS protocol name "${p}" in "${spec}"`);
    return i;
  };
  const allowed = new Set<number>(PROTOCOLS.map((_, i) => i));
  const include = new Set<number>();
  for (const tok of spec.split(/[\s,:]+/).filter(Boolean)) {
    if (tok.startsWith('>=')) {
      const n = idx(tok.slice(2));
      for (let i = 0; i < n; i++) allowed.delete(i);
    } else if (tok.startsWith('<=')) {
      const n = idx(tok.slice(2));
      for (let i = n + 1; i < PROTOCOLS.length; i++) allowed.delete(i);
    } else if (tok.startsWith('!')) {
      allowed.delete(idx(tok.slice(1)));
    } else {
      include.add(idx(tok));
    }
  }
  const usable = [...allowed].filter((i) => i >= 2 && (!include.size || include.has(i))).sort((a, b) => a - b);
  if (!usable.length) throw new Error(`no TLS protocol left in "${spec}"`);
  return { minVersion: PROTOCOLS[usable[0]] as NodeTls, maxVersion: PROTOCOLS[usable[usable.length - 1]] as NodeTls };
}


/** Secret bits of a cipher, from its name (OpenSSL's "256/256 bits" in Postfix's lines). */
export function cipherBits(name: string): number | undefined {
  if (/CHACHA20|AES_?256|CAMELLIA_?256/i.test(name)) return 256;
  if (/AES_?128|CAMELLIA_?128/i.test(name)) return 128;
  return undefined;
}
