// The parameters in force: registry defaults, overridden by main.cf, overridden by master.cf
// `-o` options for one service. Values are expanded lazily at use ($name, ${name?x}, ...), then
// parsed by type. This is the ParamReader every service reads through; it trusts the registry for
// types and reports anything else as a ConfigValueError naming the file, line and parameter.

import { readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expand, ExpansionError } from './expand.js';
import { parseMainCf, type Entry } from './maincf.js';
import { parseMasterCf, DEFAULT_MASTER_CF, type MasterService } from './mastercf.js';
import { PARAMS, paramDef } from './params.js';
import { parseBool, parseInt10, parseSize, parseTime, splitList, parseCode } from './values.js';
import type { Diagnostic } from './diagnostics.js';
import type { ParamReader } from './types.js';

export class ConfigValueError extends Error {}

export class Config implements ParamReader {
  constructor(
    /** main.cf entries (last definition wins). */
    readonly entries: ReadonlyMap<string, Entry>,
    /** The configuration directory (relative table paths resolve against it). */
    readonly dir: string,
    /** master.cf -o overrides in force for one service. */
    readonly overrides: Readonly<Record<string, string>> = {},
  ) {}

  static fromText(mainCf: string, dir = '.', file = join(dir, 'main.cf')): Config {
    return new Config(parseMainCf(mainCf, file).entries, resolve(dir));
  }

  /** The same parameters with a service's `-o` overrides on top. */
  withOverrides(overrides: Record<string, string>): Config {
    return new Config(this.entries, this.dir, { ...this.overrides, ...overrides });
  }

  /** Unexpanded value in force, or undefined for an unknown parameter that nobody set. */
  raw(name: string): string | undefined {
    if (name in this.overrides) return this.overrides[name];
    const e = this.entries.get(name);
    if (e) return e.value;
    return paramDef(name)?.default;
  }

  isSet(name: string): boolean {
    return name in this.overrides || this.entries.has(name);
  }

  /** Where a parameter was set, for error messages. */
  origin(name: string): { file: string; line: number } | undefined {
    const e = this.entries.get(name);
    return e ? { file: e.file, line: e.line } : undefined;
  }

  /** Expand an arbitrary text against these parameters, with extra macros (e.g. $rbl_code). */
  expandText(text: string, extra: Record<string, string> = {}): string {
    return expand(text, (n) => (n in extra ? extra[n] : this.raw(n)));
  }

  str(name: string): string {
    const v = this.raw(name);
    if (v === undefined) return '';
    try {
      return expand(v, (n) => this.raw(n), [name]);
    } catch (err) {
      if (err instanceof ExpansionError) throw this.valueError(name, v, err.message);
      throw err;
    }
  }

  private valueError(name: string, value: string, expected: string): ConfigValueError {
    const o = this.origin(name);
    const where = o ? `${o.file}, line ${o.line}: ` : '';
    return new ConfigValueError(`${where}parameter ${name}: bad value "${value}": ${expected}`);
  }

  private parsed<T>(name: string, parse: (v: string) => { ok: true; value: T } | { ok: false; expected: string }): T {
    const v = this.str(name);
    const r = parse(v);
    if (!r.ok) throw this.valueError(name, v, `expected ${r.expected}`);
    return r.value;
  }

  int(name: string): number {
    return this.parsed(name, parseInt10);
  }

  bool(name: string): boolean {
    return this.parsed(name, parseBool);
  }

  time(name: string): number {
    const unit = paramDef(name)?.unit ?? 's';
    return this.parsed(name, (v) => parseTime(v, unit));
  }

  size(name: string): number {
    return this.parsed(name, parseSize);
  }

  code(name: string): number {
    return this.parsed(name, parseCode);
  }

  list(name: string): string[] {
    return splitList(this.str(name));
  }

  /** Names of all parameters: registry plus anything main.cf sets. */
  names(): string[] {
    return [...new Set([...PARAMS.keys(), ...this.entries.keys(), ...Object.keys(this.overrides)])].sort();
  }
}

/**
 * The registry's defaults alone, as `postconf -d` prints them, read through the same typed
 * readers as main.cf. Modules that can run without a configuration file (tests, tools) take their
 * default parameters from here, so that no module keeps a second copy of a default.
 */
export function defaultConfig(dir = '.'): Config {
  return new Config(new Map(), resolve(dir));
}

export interface LoadedConfig {
  config: Config;
  /** smtpd listeners from master.cf (or the default `smtp inet ... smtpd`). */
  services: MasterService[];
  diagnostics: Diagnostic[];
  mainCfPath: string;
  masterCfPath: string;
  /** The text read, so that the master's workers run on exactly what it validated. */
  texts?: ConfigTexts;
}

export interface ConfigTexts {
  main: string;
  master: string;
}

/**
 * Read CONFIG_DIR/main.cf and CONFIG_DIR/master.cf — or take their `texts` (a worker gets what
 * its master read and validated, not whatever the files say by then); problems are returned,
 * not thrown.
 */
export function loadConfig(dir: string, texts?: ConfigTexts): LoadedConfig {
  const abs = resolve(dir);
  const mainCfPath = join(abs, 'main.cf');
  const masterCfPath = join(abs, 'master.cf');
  const diagnostics: Diagnostic[] = [];
  let mainText = texts?.main ?? '';
  if (!texts) {
    try {
      mainText = readFileSync(mainCfPath, 'utf8');
    } catch (err) {
      diagnostics.push({ severity: 'error', file: mainCfPath, line: 0, message: `cannot read: ${(err as Error).message}` });
    }
  }
  const main = parseMainCf(mainText, mainCfPath);
  diagnostics.push(...main.diagnostics);
  const masterText = texts?.master ?? (existsSync(masterCfPath) ? readFileSync(masterCfPath, 'utf8') : DEFAULT_MASTER_CF);
  const master = parseMasterCf(masterText, masterCfPath);
  diagnostics.push(...master.diagnostics);
  return { config: new Config(main.entries, abs), services: master.smtpd, diagnostics, mainCfPath, masterCfPath, texts: { main: mainText, master: masterText } };
}
