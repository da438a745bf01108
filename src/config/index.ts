// Configuration: main.cf and master.cf in Postfix syntax, lazy $name expansion, the typed
// parameter registry, validation with file-and-line errors.
export * from './types.js';
export * from './values.js';
export * from './expand.js';
export * from './maincf.js';
export * from './mastercf.js';
export * from './diagnostics.js';
export * from './params.js';
export * from './config.js';
export * from './validate.js';
export * from './keyvalue.js';
