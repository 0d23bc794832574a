/**
 * Peak-memory benchmark of checkpoint conversion (not part of `npm test`).
 *
 *   node out/test/bench/convertMemory.js [--hidden 2048] [--layers 16] [--shards 3] [--precision fp16] [--keep] [--skip-convert]
 *   node out/test/bench/convertMemory.js --shape 7b-siglip [--precision int4] [--dir DIR]
 *
 * `--shape 7b-siglip`: a DiffusionVL-Qwen2.5-7B-shaped SigLIP checkpoint instead (the released dimensions: Qwen2.5-7B
 * + SigLIP so400m tower, BF16, 4 shards, cheap fill, ≈ 16 GB). `--dir` keeps the checkpoint there and reuses it.
 *
 * Writes a multi-GB BF16 sharded checkpoint (3B-like widths, a cheap deterministic fill) into a temp folder, then in
 * CHILD processes (1) streams every tensor through Checkpoint.readF32 and (2) runs the real convertCheckpoint,
 * sampling each child's peak RSS (VmHWM). The number to watch is peak RSS / largest shard: streaming keeps it near
 * the largest single tensor, so it must stay well under 1 for a 16 GB 7B checkpoint to convert in 24 GB.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint } from '../../server/converter/checkpoint';
import { numel } from '../../server/converter/safetensors';
import { writeTinyCheckpoint } from '../helpers/checkpoint/tinyCheckpoint';
import { openSiglipCheckpoint } from '../../server/converter/siglipCheckpoint';
import { SIGLIP_7B_DIMS, writeSiglipCheckpoint } from '../helpers/checkpoint/tinySiglipCheckpoint';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';

type Precision = 'fp32' | 'fp16' | 'int4';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const GB = 1024 ** 3;
const fmt = (bytes: number): string => `${(bytes / GB).toFixed(2)} GiB`;

function statusKb(pid: number | 'self', field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // the process has exited
  }
}

/** Child side: do the work, then report own peak RSS on stdout as the last line. */
async function child(mode: string, ckptDir: string, outDir: string, precision: Precision): Promise<void> {
  if (mode === 'read') {
    const siglip = JSON.parse(readFileSync(join(ckptDir, 'config.json'), 'utf8')).model_type === 'diffusionvl_qwen';
    const ckpt = siglip ? await openSiglipCheckpoint(ckptDir) : await openCheckpoint(ckptDir);
    let largest = 0;
    try {
      for (const name of ckpt.tensors.keys()) {
        const a = await ckpt.readF32(name);
        largest = Math.max(largest, a.byteLength);
      }
    } finally {
      await ckpt.close();
    }
    console.log(JSON.stringify({ peak: statusKb('self', 'VmHWM'), largestF32: largest }));
    return;
  }
  // Loaded only here so that the checkpoint generator and reader can be benchmarked on their own.
  const { convertCheckpoint } = await import('../../server/converter/convert.js');
  let last = '';
  await convertCheckpoint(ckptDir, outDir, {
    precision,
    onProgress: (p) => {
      if (p.stage !== last) {
        last = p.stage;
        process.stderr.write(`  [convert] ${p.stage} (RSS ${fmt(statusKb('self', 'VmRSS'))})\n`);
      }
    },
  });
  console.log(JSON.stringify({ peak: statusKb('self', 'VmHWM') }));
}

/** Runs a child, sampling its RSS as a cross-check of the VmHWM it reports itself. */
function runChild(args: string[]): Promise<{ peak: number; sampled: number; seconds: number; report: Record<string, number> }> {
  return new Promise((resolvePromise, reject) => {
    const t0 = Date.now();
    const p = spawn(process.execPath, [__filename, '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let sampled = 0;
    let stdout = '';
    const timer = setInterval(() => {
      if (p.pid) sampled = Math.max(sampled, statusKb(p.pid, 'VmHWM'));
    }, 100);
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      clearInterval(timer);
      if (code !== 0) return reject(new Error(`child ${args[0]} exited with ${code}`));
      const report = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, number>;
      resolvePromise({ peak: report.peak ?? sampled, sampled, seconds: (Date.now() - t0) / 1000, report });
    });
  });
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [, , , mode, ckptDir, outDir, precision] = process.argv;
    await child(mode, ckptDir, outDir, precision as Precision);
    return;
  }
  const hidden = Number(arg('hidden', '2048'));
  const layers = Number(arg('layers', '16'));
  const shards = Number(arg('shards', '3'));
  const precision = arg('precision', 'fp16') as Precision;
  const keep = process.argv.includes('--keep');
  const skipConvert = process.argv.includes('--skip-convert');
  const shape = arg('shape', '');
  if (shape !== '' && shape !== '7b-siglip') throw new Error(`--shape must be 7b-siglip, got ${shape}`);
  const given = arg('dir', '');
  const root = given || (await mkdtemp(join(tmpdir(), 'dvl-bench-')));
  const ckptDir = join(root, 'checkpoint');
  const outDir = join(root, 'converted');
  try {
    if (shape === '7b-siglip') {
      let t0 = Date.now();
      if (!existsSync(join(ckptDir, 'model.safetensors.index.json'))) {
        await rm(ckptDir, { recursive: true, force: true });
        await writeSiglipCheckpoint(ckptDir, { dims: SIGLIP_7B_DIMS, dtype: 'BF16', fill: 'cheap', shards: 4 });
      }
      const files = (await readdir(ckptDir)).filter((f) => f.endsWith('.safetensors'));
      const sizes = await Promise.all(files.map(async (f) => (await stat(join(ckptDir, f))).size));
      const total = sizes.reduce((a, b) => a + b, 0);
      const largestShard = Math.max(...sizes);
      console.log(`checkpoint: DiffusionVL-Qwen2.5-7B shape (SigLIP), BF16, ${sizes.length} shards, ${fmt(total)} total, largest shard ${fmt(largestShard)}; ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      t0 = Date.now();
      const conv = await runChild(['convert', ckptDir, outDir, precision]);
      console.log(`convertCheckpoint (${precision}): peak RSS ${fmt(conv.peak)} (sampled ${fmt(conv.sampled)}), ${conv.seconds.toFixed(1)} s; peak RSS / largest shard = ${(conv.peak / largestShard).toFixed(2)}`);
      return;
    }
    const opts = {
      text: { vocabSize: 151936, hiddenSize: hidden, intermediateSize: Math.round((hidden * 5.375) / 128) * 128, numLayers: layers, numHeads: hidden / 128, numKvHeads: 2 },
      vision: { depth: 2, hiddenSize: 64, numHeads: 2, intermediateSize: 128, fullAttentionBlocks: [1] },
      tied: true,
      shards,
      dtype: 'BF16' as const,
      fill: 'cheap' as const,
      visionLayout: 'inside' as const,
      projectorLayout: 'inside' as const,
    };
    let t0 = Date.now();
    const files = await writeTinyCheckpoint(ckptDir, opts);
    const sizes = await Promise.all(files.filter((f) => f.endsWith('.safetensors')).map(async (f) => (await stat(join(ckptDir, f))).size));
    const total = sizes.reduce((a, b) => a + b, 0);
    const largestShard = Math.max(...sizes);
    console.log(
      `checkpoint: hidden ${hidden}, ${layers} layers, intermediate ${opts.text.intermediateSize}, BF16, ${sizes.length} shards, ` +
        `${fmt(total)} total, largest shard ${fmt(largestShard)}; written in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    const ck = await openCheckpoint(ckptDir);
    let largestTensor = 0;
    for (const t of ck.tensors.values()) largestTensor = Math.max(largestTensor, numel(t.shape) * 4);
    await ck.close();
    console.log(`largest tensor as float32: ${fmt(largestTensor)}`);

    t0 = Date.now();
    const read = await runChild(['read', ckptDir, outDir, precision]);
    console.log(
      `streaming read of every tensor: peak RSS ${fmt(read.peak)} (sampled ${fmt(read.sampled)}), ${read.seconds.toFixed(1)} s; ` +
        `peak RSS / largest shard = ${(read.peak / largestShard).toFixed(2)}, peak RSS / largest f32 tensor = ${(read.peak / largestTensor).toFixed(2)}`,
    );
    if (!skipConvert) {
      try {
        const conv = await runChild(['convert', ckptDir, outDir, precision]);
        console.log(
          `convertCheckpoint (${precision}): peak RSS ${fmt(conv.peak)} (sampled ${fmt(conv.sampled)}), ${conv.seconds.toFixed(1)} s; ` +
            `peak RSS / largest shard = ${(conv.peak / largestShard).toFixed(2)}`,
        );
      } catch (err) {
        console.log(`convertCheckpoint failed: ${(err as Error).message}`);
        process.exitCode = 1;
      }
    }
  } finally {
    if (given) await rm(outDir, { recursive: true, force: true });
    else if (keep) console.log(`kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
