import { join } from 'node:path';

/** The repository root (targets run from out/test/fuzz/targets). */
export const repoRoot = join(__dirname, '..', '..', '..', '..');
