import type * as Koffi from 'koffi' with { 'resolution-mode': 'import' };

/**
 * koffi, loaded the CommonJS way (its `require` export, index.cjs) with its own type declarations, which the package
 * marks as ES-module types. Every file of this backend takes koffi from here.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const koffi: typeof Koffi = require('koffi');
export type { Koffi };
