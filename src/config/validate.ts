// Validation of the whole configuration before anything binds a socket: every parameter set in
// main.cf or as a master.cf `-o` override is type-checked against the registry (after expansion),
// unknown parameters are warnings, unusual-but-legal values are warnings. Knowledge that lives
// higher up (table types, restriction names) is handed in, so config stays at the bottom.

import { Config, ConfigValueError, type LoadedConfig } from './config.js';
import { ExpansionError } from './expand.js';
import { paramDef } from './params.js';
import { parseBool, parseCode, parseInt10, parseSize, parseTime, splitList } from './values.js';
import type { Diagnostic } from './diagnostics.js';

export interface Validators {
  /** Known lookup table types (`cidr`, `hash`, ...). */
  tableTypes?: readonly string[];
  /** Checks one restriction list; returns one message per problem. */
  restrictions?: (param: string, elements: string[], config: Config) => string[];
}

/** Names referenced as $name anywhere: user-defined helper parameters are not "unused". */
function referencedNames(values: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const v of values) {
    for (const m of v.matchAll(/\$(?:\{|\()?([A-Za-z0-9_]+)/g)) out.add(m[1]);
  }
  return out;
}

export function validateConfig(loaded: LoadedConfig, v: Validators = {}): Diagnostic[] {
  const out: Diagnostic[] = [];
  const { config } = loaded;
  const classes = new Set(safeList(config, 'smtpd_restriction_classes'));
  const refs = referencedNames([...config.entries.values()].map((e) => e.value));
  for (const s of loaded.services) for (const val of Object.values(s.overrides)) for (const r of referencedNames([val])) refs.add(r);

  for (const e of config.entries.values()) {
    const at = { file: e.file, line: e.line };
    if (!paramDef(e.name)) {
      if (classes.has(e.name)) {
        out.push(...checkValue(config, e.name, 'restrictions', at, v));
      } else if (!refs.has(e.name)) {
        out.push({ severity: 'warning', ...at, message: `unused parameter: ${e.name}=${e.value}` });
      }
      continue;
    }
    out.push(...checkValue(config, e.name, undefined, at, v));
  }
  for (const s of loaded.services) {
    const svc = config.withOverrides(s.overrides);
    for (const name of Object.keys(s.overrides)) {
      const at = { file: s.file, line: s.line };
      if (!paramDef(name)) {
        out.push({ severity: 'warning', ...at, message: `unused parameter: ${name}=${s.overrides[name]}` });
        continue;
      }
      out.push(...checkValue(svc, name, undefined, at, v));
    }
  }
  // Restriction lists left at their defaults still get parsed (an override may break them).
  for (const name of RESTRICTION_LISTS) {
    if (!config.isSet(name)) out.push(...checkValue(config, name, undefined, { file: loaded.mainCfPath, line: 0 }, v));
  }
  return out;
}

const RESTRICTION_LISTS = [
  'smtpd_client_restrictions', 'smtpd_helo_restrictions', 'smtpd_sender_restrictions', 'smtpd_relay_restrictions',
  'smtpd_recipient_restrictions', 'smtpd_data_restrictions', 'smtpd_end_of_data_restrictions', 'smtpd_etrn_restrictions',
];

function safeList(config: Config, name: string): string[] {
  try {
    return config.list(name);
  } catch {
    return [];
  }
}

function checkValue(
  config: Config,
  name: string,
  forcedType: 'restrictions' | undefined,
  at: { file: string; line: number },
  v: Validators,
): Diagnostic[] {
  const def = paramDef(name);
  const type = forcedType ?? def?.type ?? 'string';
  let value: string;
  try {
    value = config.str(name);
  } catch (err) {
    const msg = err instanceof ConfigValueError || err instanceof ExpansionError ? err.message.replace(/^.*?parameter /, 'parameter ') : String(err);
    return [{ severity: 'error', ...at, message: msg.startsWith('parameter') ? msg : `parameter ${name}: ${msg}` }];
  }
  const raw = config.raw(name) ?? '';
  const bad = (expected: string): Diagnostic => ({
    severity: 'error', ...at, message: `parameter ${name}: bad value "${raw}": expected ${expected}`,
  });
  const range = (n: number, shown: string): Diagnostic[] => {
    if (def?.min !== undefined && n < def.min) return [bad(`a value >= ${def.min}${shown}`)];
    if (def?.max !== undefined && n > def.max) return [bad(`a value <= ${def.max}${shown}`)];
    return [];
  };
  switch (type) {
    case 'int': {
      const r = parseInt10(value);
      return r.ok ? range(r.value, '') : [bad(r.expected)];
    }
    case 'time': {
      const r = parseTime(value, def?.unit ?? 's');
      return r.ok ? range(r.value, ' seconds') : [bad(r.expected)];
    }
    case 'size': {
      const r = parseSize(value);
      return r.ok ? [] : [bad(r.expected)];
    }
    case 'bool': {
      const r = parseBool(value);
      return r.ok ? [] : [bad(r.expected)];
    }
    case 'code': {
      const r = parseCode(value);
      if (!r.ok) return [bad(r.expected)];
      return r.unusual
        ? [{ severity: 'warning', ...at, message: `parameter ${name}: ${r.value} is not a standard SMTP reply code (usual: ${r.value >= 500 ? '550 or 554' : '450 or 451'})` }]
        : [];
    }
    case 'maps': {
      const problems: Diagnostic[] = [];
      for (const ref of splitList(value)) {
        const m = /^([a-z0-9_]+):(.+)$/i.exec(ref);
        if (!m) problems.push(bad('a list of type:name lookup tables'));
        else if (v.tableTypes && !v.tableTypes.includes(m[1].toLowerCase()))
          problems.push({ severity: 'error', ...at, message: `parameter ${name}: unsupported dictionary type: ${m[1]} (known: ${v.tableTypes.join(', ')})` });
      }
      return problems;
    }
    case 'restrictions': {
      if (!v.restrictions) return [];
      return v.restrictions(name, splitList(value), config).map((message) => ({ severity: 'error' as const, ...at, message: `parameter ${name}: ${message}` }));
    }
    default:
      if (def?.oneOf && !def.oneOf.includes(value.trim())) return [bad(`one of: ${def.oneOf.filter(Boolean).join(', ')}`)];
      return [];
  }
}
