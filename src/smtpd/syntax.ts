// SMTP command argument syntax as Postfix's smtpd reads it: `FROM:<address> PARAM=value ...`,
// the address taken as given (source routes, %, ! and quoted local parts are passed through raw
// so that the restriction engine sees exactly what the client sent), ESMTP parameters with xtext
// decoding, DSN NOTIFY/ORCPT/RET/ENVID. Trusts nothing; every failure is a typed Reply.

import { reply, type Reply, type DsnNotify } from '../mail/index.js';

export interface AddressArg {
  /** The address without angle brackets, exactly as given. */
  address: string;
  params: Map<string, string | true>;
}

/**
 * Split `FROM:<addr> params` / `TO:<addr> params`. Returns undefined when the keyword is missing.
 * Postfix (without strict_rfc821_envelopes) also accepts a space after the colon and an address
 * without brackets.
 */
export function splitAddressArg(arg: string, keyword: 'FROM' | 'TO'): { address: string; rest: string; bracketed: boolean } | undefined {
  const m = new RegExp(`^${keyword}:\\s*`, 'i').exec(arg);
  if (!m) return undefined;
  const s = arg.slice(m[0].length);
  // Postfix's tokenizer: no address token after the keyword is a syntax error (argc < 3).
  if (!s.trim()) return undefined;
  if (s.startsWith('<')) {
    let inQuote = false;
    for (let i = 1; i < s.length; i++) {
      const c = s[i];
      if (c === '\\' && inQuote) {
        i++;
        continue;
      }
      if (c === '"') inQuote = !inQuote;
      else if (c === '>' && !inQuote) {
        // Postfix strips one pair of brackets and parses the rest as RFC 822: <<a@b>> is <a@b>.
        if (s[1] === '<' && s[i + 1] === '>') return { address: s.slice(2, i), rest: s.slice(i + 2).trim(), bracketed: true };
        return { address: s.slice(1, i), rest: s.slice(i + 1).trim(), bracketed: true };
      }
    }
    return { address: s, rest: '', bracketed: false };
  }
  const sp = s.search(/\s/);
  return sp < 0 ? { address: s, rest: '', bracketed: false } : { address: s.slice(0, sp), rest: s.slice(sp).trim(), bracketed: false };
}

/** Address syntax check: printable ASCII or UTF-8, no unquoted white space, balanced quotes and brackets. */
export function addressSyntaxOk(address: string): boolean {
  if (address.length > 320) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(address)) return false;
  let inQuote = false;
  for (let i = 0; i < address.length; i++) {
    const c = address[i];
    if (c === '\\' && inQuote) {
      i++;
      continue;
    }
    if (c === '"') inQuote = !inQuote;
    else if (!inQuote && /[\s<>()]/.test(c)) return false;
  }
  return !inQuote;
}

/** RFC 3461 xtext: `+XX` hex escapes. Undefined when malformed. */
export function decodeXtext(v: string): string | undefined {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 33 || c > 126 || v[i] === '=') return undefined;
    if (v[i] === '+') {
      const hex = v.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else out += v[i];
  }
  return out;
}

/** ESMTP parameters in order, each as [NAME, value or true, the parameter as sent]. */
export type Params = Array<[string, string | true, string]>;

export function parseParams(rest: string): Params {
  const params: Params = [];
  for (const p of rest.split(/\s+/).filter(Boolean)) {
    const eq = p.indexOf('=');
    if (eq < 0) params.push([p.toUpperCase(), true, p]);
    else params.push([p.slice(0, eq).toUpperCase(), p.slice(eq + 1), p]);
  }
  return params;
}

export interface MailParams {
  size?: number;
  body?: string;
  smtputf8?: boolean;
  ret?: 'FULL' | 'HDRS';
  envid?: string;
}

const bad = (text: string): Reply => reply(501, '5.5.4', text);

/** MAIL FROM parameters; returns a Reply for the first bad one. */
export function mailParams(params: Params, opts: { smtputf8: boolean }): MailParams | Reply {
  const out: MailParams = {};
  for (const [name, value, raw] of params) {
    switch (name) {
      case 'SIZE':
        if (typeof value !== 'string' || !/^\d{1,20}$/.test(value)) return bad('Bad message size syntax');
        out.size = Number(value);
        break;
      case 'BODY': {
        const v = typeof value === 'string' ? value.toUpperCase() : '';
        if (v !== '7BIT' && v !== '8BITMIME') return reply(555, '5.5.4', `Unsupported option: ${raw}`);
        out.body = v;
        break;
      }
      case 'SMTPUTF8':
        if (value !== true || !opts.smtputf8) return reply(555, '5.5.4', `Unsupported option: ${raw}`);
        out.smtputf8 = true;
        break;
      case 'RET': {
        const v = typeof value === 'string' ? value.toUpperCase() : '';
        if ((v !== 'FULL' && v !== 'HDRS') || out.ret) return bad('Bad RET parameter syntax');
        out.ret = v;
        break;
      }
      case 'ENVID': {
        const v = typeof value === 'string' ? decodeXtext(value) : undefined;
        if (v === undefined || !v || v.length > 100 || out.envid !== undefined) return bad('Bad ENVID parameter syntax');
        out.envid = v;
        break;
      }
      case 'AUTH':
        // RFC 4954 AUTH=<mailbox>: accepted and ignored, as Postfix does for untrusted clients.
        break;
      default:
        return reply(555, '5.5.4', `Unsupported option: ${raw}`);
    }
  }
  return out;
}

export interface RcptParams {
  notify?: DsnNotify[];
  orcpt?: string;
}

export function rcptParams(params: Params): RcptParams | Reply {
  const out: RcptParams = {};
  for (const [name, value, raw] of params) {
    switch (name) {
      case 'NOTIFY': {
        const vals = typeof value === 'string' ? value.toUpperCase().split(',') : [''];
        const okVals = ['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'];
        if (!vals.every((v) => okVals.includes(v)) || (vals.includes('NEVER') && vals.length > 1) || new Set(vals).size !== vals.length) {
          return bad('Error: Bad NOTIFY parameter syntax');
        }
        out.notify = vals as DsnNotify[];
        break;
      }
      case 'ORCPT': {
        const m = typeof value === 'string' ? /^([A-Za-z0-9-]+);(.+)$/.exec(value) : null;
        const addr = m ? decodeXtext(m[2]) : undefined;
        if (!m || addr === undefined) return bad('Error: Bad ORCPT parameter syntax');
        out.orcpt = `${m[1].toLowerCase()};${addr}`;
        break;
      }
      default:
        return reply(555, '5.5.4', `Unsupported option: ${raw}`);
    }
  }
  return out;
}

/**
 * `user@domain.` → `user@domain`, as Postfix's address rewriting does before the queue: the
 * restrictions already treat both alike, and a strict primary would refuse the dotted form.
 */
export function stripTrailingDot(address: string): string {
  return /@[^@]*[^.]\.$/.test(address) ? address.slice(0, -1) : address;
}
