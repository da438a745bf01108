// The restriction engine (smtpd_*_restrictions): the contract, the engine, its parser and the
// validator that `backstop check` and the master hand to validateConfig().
export * from './types.js';
export { createRestrictionEngine, parseElements, RESTRICTION_LISTS, type EngineOptions, type ListName, type ParsedElement } from './engine.js';
export { restrictionValidator, restrictions } from './validate.js';
export { RESTRICTIONS, type RestrictionDef } from './restrictions.js';
export type { Decision } from './decision.js';
export type { CheckDns } from './context.js';
export { resolveAddress, type Resolved } from './resolve.js';
export { MatchList } from './matchlist.js';
