import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { goldenDir, repoRoot } from './helpers/paths';

// Spawns the bundled CLI as users (and outside checks) run it: `npm run build` makes dist/; build it if absent.
const bin = join(repoRoot, 'bin', 'diffusionvl.js');
before(() => {
  if (!existsSync(join(repoRoot, 'dist', 'cli.js'))) execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: repoRoot, stdio: 'inherit' });
});

const golden = JSON.parse(readFileSync(join(goldenDir, 'preprocess.json'), 'utf8')) as {
  processor: { name: string; image_grid_thw: number[][]; sha256: string }[];
};
const expected = (name: string) => {
  const c = golden.processor.find((p) => p.name === name);
  assert.ok(c, name);
  return c;
};
const cli = (...args: string[]) => spawnSync(process.execPath, [bin, 'inspect-image', ...args], { cwd: repoRoot, encoding: 'utf8' });
const image = (f: string) => join(goldenDir, 'images', f);

test('inspect-image --json prints exactly the grid and the pixel_values SHA-256', () => {
  const c = expected('img1_rgb_300x200');
  const r = cli(image('img1_rgb_300x200.png'), '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `{"image_grid_thw":${JSON.stringify(c.image_grid_thw[0])},"pixel_values_sha256":"${c.sha256}"}\n`);
});

test('inspect-image honours --min-pixels/--max-pixels/--alpha', () => {
  const c = expected('img3_tiny_37x29@qwen_default_minmax');
  const r = cli('--min-pixels', '3136', '--max-pixels', '1003520', '--alpha', 'drop', image('img3_tiny_37x29.png'), '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { image_grid_thw: c.image_grid_thw[0], pixel_values_sha256: c.sha256 });
  const rgba = expected('img4_rgba_120x90');
  const drop = cli(image('img4_rgba_120x90.png'), '--alpha', 'drop', '--json');
  assert.equal(JSON.parse(drop.stdout).pixel_values_sha256, rgba.sha256);
});

test('inspect-image without --json prints a summary; errors are reported with exit codes', () => {
  const r = cli(image('img2_banner_1000x80.png'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /image_grid_thw: \[1, 8, 98\]/);
  assert.match(r.stdout, /1000×80/);

  const missing = cli(join(goldenDir, 'images', 'nope.png'), '--json');
  assert.equal(missing.status, 1);
  assert.equal(missing.stdout, '');
  assert.match(missing.stderr, /nope\.png: no such file/);

  const bad = cli(image('img1_rgb_300x200.png'), '--alpha', 'black');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--alpha must be "white" or "drop"/);
});
