import { join, resolve } from 'node:path';

/** Repository root (tests run from out/test/…, compiled by tsc). */
export const repoRoot = resolve(__dirname, '..', '..', '..');
export const fixturesDir = join(repoRoot, 'test', 'fixtures');
export const goldenDir = join(fixturesDir, 'golden');
/** Scratch space shared by tests within and across runs (generated checkpoints, converted models). */
export const cacheDir = join(repoRoot, '.cache', 'test');
