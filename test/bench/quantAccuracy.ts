/**
 * `npm run bench:quant [-- --seeds 71,72] [--count 300]`: the llama.cpp decoder's GGUF types against the fp32 ONNX
 * reference on the trained default model.
 *
 * `models/default` ships as an fp32 ONNX folder without its checkpoint: `convert models/default <out> --decoder gguf
 * --precision T` reads its text weights back exactly and writes F32, Q8_0, Q4_0 and Q4_K_M GGUF decoders. Each
 * answers the same fresh synthetic questions as ONNX Runtime on the original folder (no AR baseline, static and
 * dynamic remasking at eval-synthetic's default thresholds, one denoising state per forward so that every run is the
 * official call pattern); printed: accuracy per configuration and seed, the share of answers (and of generated ids)
 * identical to the fp32 ONNX answer question by question, and the tensor types each file really holds.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { GGML_TYPE_NAMES } from '../../server/engine/backends/llamacpp/ggmlTypes';
import type { DecoderBackend } from '../../server/engine/api';
import { readManifest, type GgufType } from '../../server/engine/manifest';
import type { EvalReport } from '../../server/synthetic/evaluate';
import { readGguf } from '../helpers/ggufReader';
import { repoRoot } from '../helpers/paths';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: string) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : fallback);
const source = join(repoRoot, 'models', 'default');
const work = join(repoRoot, '.cache', 'bench-quant');
const TYPES: GgufType[] = ['fp32', 'q8_0', 'q4_0', 'q4_k_m'];
const LABEL: Record<GgufType, string> = { fp32: 'GGUF F32', fp16: 'GGUF F16', q8_0: 'Q8_0', q4_0: 'Q4_0', q4_k_m: 'Q4_K_M' };

interface Variant {
  label: string;
  modelDir: string;
  backend: DecoderBackend;
}

/** Which ggml types each tensor of a GGUF holds, by role (blk.N. dropped): "Q4_0", or "Q8_0 (blk 0, 3), Q5_0 (blk 1, 2)". */
function tensorTypes(file: string): Map<string, string> {
  const byRole = new Map<string, Map<string, string[]>>();
  for (const t of readGguf(file).tensors) {
    const block = /^blk\.(\d+)\./.exec(t.name)?.[1];
    const role = `${t.name.replace(/^blk\.\d+\./, 'blk.*.')} [${t.ne.join('×')}]`;
    const blocks = byRole.get(role) ?? new Map<string, string[]>();
    const name = GGML_TYPE_NAMES[t.type] ?? `type ${t.type}`;
    blocks.set(name, [...(blocks.get(name) ?? []), block ?? '']);
    byRole.set(role, blocks);
  }
  const out = new Map<string, string>();
  for (const [role, blocks] of byRole) out.set(role, blocks.size === 1 ? [...blocks.keys()][0] : [...blocks].map(([k, b]) => `${k} (blk ${b.join(', ')})`).join(', '));
  return out;
}

const pct = (x: number, n: number) => `${((100 * x) / n).toFixed(1)} %`;

/**
 * `diffusionvl <args>` in its own process, as anyone would run it; stdout back. (One process per step also keeps
 * each llama.cpp load apart: the quantiser's and the engines' loads in one process can pick different library
 * packages, which ggml does not survive.)
 */
function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'diffusionvl.js'), ...args], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`diffusionvl ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return r.stdout;
}

async function main(): Promise<void> {
  const seeds = opt('seeds', '71,72').split(',').map(Number);
  const count = Number(opt('count', '300'));
  const threads = Number(opt('threads', '1'));
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });

  const variants: Variant[] = [{ label: 'ONNX fp32', modelDir: source, backend: 'onnx' }];
  const types = new Map<GgufType, Map<string, string>>();
  for (const type of TYPES) {
    const dir = join(work, type);
    cli(['convert', source, dir, '--decoder', 'gguf', '--precision', type, '--quiet']);
    types.set(type, tensorTypes(join(dir, readManifest(dir).decoders!.gguf!.file)));
    variants.push({ label: LABEL[type], modelDir: dir, backend: 'llama.cpp' });
  }
  const blockSize = readManifest(source).blockSize;
  console.log(`default model (block ${blockSize}); ${count} questions per seed; no AR baseline; one denoising state per forward; ${threads} thread(s)`);

  const reports = new Map<string, EvalReport>();
  for (const seed of seeds) {
    for (const v of variants) {
      const args = ['--model', v.modelDir, '--backend', v.backend, '--seed', String(seed), '--count', String(count), '--no-ar', '--verify-steps', '1', '--threads', String(threads), '--json'];
      const r = JSON.parse(cli(['eval-synthetic', ...args])) as EvalReport;
      // A GGUF-only folder cannot fall back, but say so rather than trust it.
      if (r.backend !== v.backend) throw new Error(`${v.label}: ran on ${r.backend} (${r.backendReason}), not ${v.backend}`);
      reports.set(`${seed} ${v.label}`, r);
      await writeFile(join(work, `seed${seed}-${v.label.replace(/\W+/g, '_')}.json`), JSON.stringify(r));
      console.error(`seed ${seed} ${v.label}: eval-synthetic ${args.join(' ')} (load average ${loadavg()[0].toFixed(2)})`);
    }
  }

  const head = variants.map((v) => v.label);
  const lines = [
    '| seed | remasking | ' + head.join(' | ') + ' |',
    '|---|---|' + head.map(() => '---:').join('|') + '|',
  ];
  for (const seed of seeds) {
    const ref = reports.get(`${seed} ${variants[0].label}`)!;
    for (const [i, refRow] of ref.rows.entries()) {
      const cells = variants.map((v, j) => {
        const row = reports.get(`${seed} ${v.label}`)!.rows[i];
        if (row.name !== refRow.name) throw new Error(`row ${i}: ${row.name} vs ${refRow.name}`);
        const acc = pct(row.correct, row.count);
        if (j === 0) return acc;
        const sameText = row.answers.filter((a, q) => a.text === refRow.answers[q].text).length;
        const sameIds = row.answers.filter((a, q) => a.ids.length === refRow.answers[q].ids.length && a.ids.every((id, k) => id === refRow.answers[q].ids[k])).length;
        return `${acc} · ${sameText}${sameIds === sameText ? '' : ` (ids ${sameIds})`} / ${row.count}`;
      });
      const remasking = refRow.name.replace(/^diffusion, /, '').replace(/, K=1$/, '');
      lines.push(`| ${seed} | ${remasking} | ${cells.join(' | ')} |`);
    }
  }
  console.log('\naccuracy · answers identical to the fp32 ONNX answer (question by question)\n');
  console.log(lines.join('\n'));

  const roles = [...types.get('fp32')!.keys()];
  const typeLines = ['| tensor [ggml shape] | ' + TYPES.map((t) => LABEL[t]).join(' | ') + ' |', '|---|' + TYPES.map(() => '---').join('|') + '|'];
  for (const role of roles) typeLines.push(`| ${role} | ${TYPES.map((t) => types.get(t)!.get(role) ?? '–').join(' | ')} |`);
  console.log('\nggml tensor types the files hold (read back from each GGUF)\n');
  console.log(typeLines.join('\n'));
  console.log(`\nload average at the end: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
