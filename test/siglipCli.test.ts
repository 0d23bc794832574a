/** The CLI contracts on the SigLIP model, spawned as outside checks run them: inspect-image --model, generate. */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { fixturesDir, repoRoot } from './helpers/paths';
import { ensureTinySiglipModel } from './helpers/tinySiglipModel';

const bin = join(repoRoot, 'bin', 'diffusionvl.js');
before(() => {
  if (!existsSync(join(repoRoot, 'dist', 'cli.js'))) execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: repoRoot, stdio: 'inherit' });
});
const dir = join(fixturesDir, 'golden-siglip');
const image = (f: string) => join(dir, 'images', f);
const pre = JSON.parse(readFileSync(join(dir, 'preprocess.json'), 'utf8')) as { images: Record<string, { grid_rows_cols: number[]; num_views: number; pixel_values_sha256: string }> };
const gen = JSON.parse(readFileSync(join(dir, 'generate.json'), 'utf8')) as {
  cases: Record<string, { prompt_ids: number[]; images: string[]; gen_kwargs: { gen_length: number; steps: number }; output_ids: number[]; forwards: Record<string, number> }>;
};

function cli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

test('inspect-image --model <SigLIP> --json prints the grid, the view count and the pixel tensor SHA-256', async () => {
  const model = await ensureTinySiglipModel('fp32');
  for (const name of ['img5_large_1500x900', 'img6_rgba_420x300', 'img7_gray_800x1166']) {
    const g = pre.images[name];
    const r = await cli('inspect-image', image(`${name}.png`), '--model', model, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `{"grid_rows_cols":${JSON.stringify(g.grid_rows_cols)},"num_views":${g.num_views},"pixel_values_sha256":"${g.pixel_values_sha256}"}\n`);
  }
  const bad = await cli('inspect-image', image('img3_tiny_20x15.png'), '--model', model, '--image-aspect-ratio', 'anyres', '--json');
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /anyres_max_N/);
});

test('generate --json on the SigLIP model reproduces the official ids and forward counts (anyres, and pad for two images)', async () => {
  const model = await ensureTinySiglipModel('fp32');
  for (const [name, aspect] of [['c_img5large_static_b8_s8', undefined], ['g_pair_pad_static_b8_s8', 'pad']] as const) {
    const c = gen.cases[name];
    const args = ['generate', '--model', model, '--prompt-ids', JSON.stringify(c.prompt_ids), '--gen-length', String(c.gen_kwargs.gen_length), '--steps', String(c.gen_kwargs.steps), '--no-fused-commit', '--verify-steps', '1', '--json'];
    for (const f of c.images) args.push('--image', image(f));
    if (aspect) args.push('--image-aspect-ratio', aspect);
    const r = await cli(...args);
    assert.equal(r.status, 0, r.stderr);
    // The contract's keys lead the one line; later keys are only ever added.
    assert.ok(r.stdout.startsWith(`${JSON.stringify({ output_ids: c.output_ids, forwards: c.forwards }).slice(0, -1)},`) && r.stdout.endsWith('}\n'), `${name}: ${r.stdout}`);
  }
});
