// The configuration contract that every service reads through. The parser (main.cf, master.cf,
// $name expansion) and the parameter registry (params.ts) implement it; services only read.

export type ParamType = 'string' | 'int' | 'bool' | 'time' | 'size' | 'list' | 'code' | 'restrictions' | 'maps';

export interface ParamDef {
  name: string;
  /** Postfix's default, as `postconf -d` prints it (may contain $name references). */
  default: string;
  type: ParamType;
  /** For time values: the unit of a bare number (Postfix's default unit for this parameter). */
  unit?: 's' | 'm' | 'h' | 'd' | 'w';
  min?: number;
  max?: number;
  /** For 'string' parameters with a fixed set of legal values. */
  oneOf?: string[];
  /** The module that reads it (documentation, `postconf -d` grouping). */
  module: string;
}

/** Typed, expanded read access to the parameters in force (main.cf plus master.cf -o overrides). */
export interface ParamReader {
  /** Expanded string value ($name, ${name}, ${name?x}, ${name:x} expanded). */
  str(name: string): string;
  int(name: string): number;
  bool(name: string): boolean;
  /** Time value in seconds (bare numbers use the parameter's default unit). */
  time(name: string): number;
  /** Size value in bytes. */
  size(name: string): number;
  /** List split on commas and white space, expanded; `{ ... }` groups stay one element. */
  list(name: string): string[];
  /** True when main.cf or an override sets the parameter. */
  isSet(name: string): boolean;
}
