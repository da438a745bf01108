// Fuzz targets for the SMTP command parser (test/fuzz/smtp-fuzz.test.ts), loaded by the fuzzer's
// worker (fuzz.ts): one input is one command line, taken apart the way smtpd's dispatcher does
// (verb, argument) and fed to the parser functions of src/smtpd/syntax.ts. Property: each returns
// a value of the documented shape or a Reply with a 5xx code and a text, or throws an Error with a
// message — never a TypeError/RangeError, never a hang. Trusts the corpus only as seeds.

import { splitAddressArg, addressSyntaxOk, parseParams, mailParams, rcptParams, decodeXtext, type Params } from '../../src/smtpd/syntax.js';
import { validHostname } from '../../src/mail/index.js';
import { FuzzProblem, type FuzzTarget } from './fuzz.js';

export const SMTP_CORPUS: readonly string[] = [
  'EHLO client.example.com',
  'HELO [127.0.0.1]',
  'EHLO [IPv6:::1]',
  'HELO mx-1.sub_domain.example.',
  'MAIL FROM:<alice@example.com> SIZE=12345 BODY=8BITMIME',
  'MAIL FROM:<> RET=HDRS ENVID=abc+2Bdef',
  'MAIL FROM:<"quoted local"@example.com> SMTPUTF8 BODY=7BIT',
  'MAIL FROM: <bob@example.org> AUTH=<>',
  'MAIL FROM:bob@example.org SIZE=0',
  'mail from:<@relay.example:user@example.com> RET=FULL',
  'RCPT TO:<carol@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol+40example.com',
  'RCPT TO:<dave@example.com> NOTIFY=NEVER',
  'RCPT TO:<x%other.test@primary.test> NOTIFY=DELAY ORCPT=utf-8;x\\x{40}y',
  'rcpt to: postmaster',
  'RCPT TO:<"a\\"b>"@example.com>',
  'DATA',
  'RSET',
  'VRFY postmaster',
  'ETRN example.com',
  'ETRN @example.com',
  'AUTH PLAIN AGFsaWNlAHNlY3JldA==',
  'AUTH LOGIN',
  'STARTTLS',
  'QUIT',
  'NOOP',
  'XYZZY plugh',
  '\u0000\u00ff\u00fe garbage',
];

const DICT: readonly string[] = [
  '<', '>', '<>', '"', '\\', '@', ':', '%', '!', ',', '=', ' ', '\t', '+', '+2B', '+4', '+ZZ', '[', ']', '[IPv6:', '.', '..',
  'FROM:', 'TO:', 'MAIL', 'RCPT', 'EHLO', 'HELO', 'ETRN', 'VRFY', 'DATA', 'RSET', 'QUIT', 'NOOP', 'STARTTLS', 'AUTH', 'PLAIN', 'LOGIN',
  'SIZE=', 'SIZE=99999999999999999999999', 'BODY=', 'BODY=8BITMIME', 'NOTIFY=', 'NOTIFY=NEVER,SUCCESS', 'NOTIFY=,,', 'ORCPT=', 'ORCPT=rfc822;',
  'RET=', 'RET=FULL', 'ENVID=', 'SMTPUTF8', 'AUTH=', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'SIZE=-1', 'SIZE=1e9',
  '\r', '\n', '\r\n', '\u0000', '\u00e9', '\u2028', '\ud800', '\ufeff', 'x'.repeat(70), 'a.'.repeat(140), '-', '_',
];

const VERBS = new Set(['EHLO', 'HELO', 'MAIL', 'RCPT', 'DATA', 'RSET', 'VRFY', 'ETRN', 'AUTH', 'STARTTLS', 'QUIT', 'NOOP']);

function isReply(v: unknown): v is { code: number; dsn: string; text: string } {
  return typeof v === 'object' && v !== null && 'code' in v && 'text' in v;
}

function checkReply(where: string, r: { code: number; dsn: string; text: string }): void {
  if (!Number.isInteger(r.code) || r.code < 500 || r.code > 599) throw new FuzzProblem(`${where}: reply code ${r.code} is not 5xx`);
  if (!/^5\.\d{1,3}\.\d{1,3}$/.test(r.dsn)) throw new FuzzProblem(`${where}: bad enhanced status code "${r.dsn}"`);
  if (!r.text) throw new FuzzProblem(`${where}: reply without text`);
}

/** Wrap one parser call: an escaping plain Error must carry a message; types like TypeError are reported by fuzz.ts. */
function call<T>(where: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof Error && !(err instanceof FuzzProblem) && err.constructor === Error && !err.message) throw new FuzzProblem(`${where}: Error without a message`);
    throw err;
  }
}

function checkParams(where: string, rest: string): Params {
  const params = call(where, () => parseParams(rest));
  if (!Array.isArray(params)) throw new FuzzProblem(`${where}: parseParams did not return a list`);
  for (const [k, v] of params) {
    // An empty name ("=x") is allowed here; mailParams/rcptParams must then refuse it (checked below).
    if (k !== k.toUpperCase() || /\s/.test(k)) throw new FuzzProblem(`${where}: bad parameter name ${JSON.stringify(k)}`);
    if (v !== true && (typeof v !== 'string' || /\s/.test(v))) throw new FuzzProblem(`${where}: bad parameter value ${JSON.stringify(v)}`);
  }
  return params;
}

/** One command line through every parser that smtpd would apply to it (and a few it would not). */
export const smtpCommand: FuzzTarget = {
  corpus: SMTP_CORPUS,
  dict: DICT,
  run(input) {
    const line = input.replace(/^\s+/, '');
    const sp = line.search(/\s/);
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const arg = sp < 0 ? '' : line.slice(sp + 1).trim();
    // Every parser sees every input (the verb only chooses the keyword), so garbage reaches all.
    for (const keyword of ['FROM', 'TO'] as const) {
      const split = call('splitAddressArg', () => splitAddressArg(VERBS.has(verb) ? arg : line, keyword));
      if (split === undefined) continue;
      if (typeof split.address !== 'string' || typeof split.rest !== 'string' || typeof split.bracketed !== 'boolean') {
        throw new FuzzProblem(`splitAddressArg: wrong shape ${JSON.stringify(split)}`);
      }
      if (split.address.length > input.length) throw new FuzzProblem('splitAddressArg: address longer than the input');
      if (typeof call('addressSyntaxOk', () => addressSyntaxOk(split.address)) !== 'boolean') throw new FuzzProblem('addressSyntaxOk: not a boolean');
      const params = checkParams('parseParams', split.rest);
      for (const smtputf8 of [true, false]) {
        const m = call('mailParams', () => mailParams(params, { smtputf8 }));
        if (isReply(m)) checkReply('mailParams', m);
        else if (m.size !== undefined && !(Number.isFinite(m.size) && m.size >= 0)) throw new FuzzProblem(`mailParams: size ${m.size}`);
        else if (m.smtputf8 && !smtputf8) throw new FuzzProblem('mailParams: SMTPUTF8 accepted while not offered');
      }
      if (params.some(([k]) => k === '') && !isReply(call('mailParams', () => mailParams(params, { smtputf8: true })))) throw new FuzzProblem('mailParams accepted an empty parameter name');
      const r = call('rcptParams', () => rcptParams(params));
      if (isReply(r)) checkReply('rcptParams', r);
      else if (r.notify && (!Array.isArray(r.notify) || r.notify.length === 0)) throw new FuzzProblem(`rcptParams: notify ${JSON.stringify(r.notify)}`);
    }
    // Parameters straight from the argument (no address), as a client might send them.
    const params = checkParams('parseParams(arg)', arg);
    const m = call('mailParams(arg)', () => mailParams(params, { smtputf8: true }));
    if (isReply(m)) checkReply('mailParams(arg)', m);
    const r = call('rcptParams(arg)', () => rcptParams(params));
    if (isReply(r)) checkReply('rcptParams(arg)', r);
    if (typeof call('addressSyntaxOk(arg)', () => addressSyntaxOk(arg)) !== 'boolean') throw new FuzzProblem('addressSyntaxOk: not a boolean');
    if (typeof call('validHostname', () => validHostname(arg)) !== 'boolean') throw new FuzzProblem('validHostname: not a boolean');
    const x = call('decodeXtext', () => decodeXtext(arg));
    if (x !== undefined && typeof x !== 'string') throw new FuzzProblem('decodeXtext: not a string');
  },
};

/** Purely random lines (no corpus structure beyond the dictionary) for the same parsers. */
export const smtpGarbage: FuzzTarget = {
  corpus: ['', ' ', 'FROM:', 'TO:<', 'FROM:<"', '=', 'A=B=C', '[', '+'],
  dict: DICT,
  run(input) {
    smtpCommand.run(input);
  },
};
