import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { BlockCoverage } from './coverage';
import { Mutator, Rng } from './mutate';
import { loadTarget } from './targets';
import type { FromFuzzWorker, FuzzWorkerData } from './protocol';

/**
 * The fuzzing loop, in a worker thread so that the parent can stop it when an input hangs or eats memory: mutate a
 * corpus entry, publish it in shared memory (where the parent finds it if the worker has to be killed), run the
 * target, keep the input if it reached new code.
 */
const data = workerData as FuzzWorkerData;
const execs = new Int32Array(data.shared, 0, 2);
const current = new Uint8Array(data.shared, 8);
const post = (m: FromFuzzWorker): void => parentPort?.postMessage(m);

function publish(input: Buffer): void {
  current.set(input.subarray(0, current.length));
  Atomics.store(execs, 1, Math.min(input.length, current.length));
}

function readCorpus(dirs: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      const p = join(dir, n);
      if (statSync(p).isFile()) out.push(readFileSync(p));
    }
  }
  return out;
}

async function main(): Promise<void> {
  const target = loadTarget(data.target);
  const maxLength = target.fuzz.maxLength ?? 64 * 1024;
  await target.fuzz.setup?.();
  const coverage = new BlockCoverage((url) => url.includes('/out/server/'));
  await coverage.start();
  mkdirSync(data.workDir, { recursive: true });
  const corpus = readCorpus([...data.seedDirs, data.workDir]);
  if (corpus.length === 0) corpus.push(Buffer.alloc(0));
  const rng = new Rng(data.seed);
  const mutator = new Mutator(rng, (target.fuzz.dictionary ?? []).map((t) => Buffer.from(t, 'utf8')), maxLength);
  const deadline = Date.now() + data.seconds * 1000;
  let n = 0;
  const runOne = async (input: Buffer): Promise<number> => {
    publish(input);
    try {
      await target.fuzz.fuzz(input);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const cause = e.cause instanceof Error ? `\ncaused by: ${e.cause.stack ?? e.cause.message}` : '';
      post({ type: 'finding', message: e.message, stack: `${e.stack ?? ''}${cause}`, input: new Uint8Array(input) });
      return -1;
    }
    Atomics.store(execs, 0, ++n);
    return coverage.collect();
  };
  // Seeds first: each must pass, and together they give the starting coverage.
  const kept: Buffer[] = [];
  for (const seed of corpus) {
    const fresh = await runOne(seed);
    if (fresh < 0) return;
    kept.push(seed);
  }
  let lastReport = Date.now();
  while (Date.now() < deadline) {
    const base = kept[rng.below(kept.length)];
    const other = kept[rng.below(kept.length)];
    const input = mutator.mutate(base, other);
    const fresh = await runOne(input);
    if (fresh < 0) return;
    if (fresh > 0) {
      kept.push(input);
      writeFileSync(join(data.workDir, createHash('sha1').update(input).digest('hex')), input);
    }
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      post({ type: 'stats', execs: n, corpus: kept.length, features: coverage.size });
    }
  }
  await target.fuzz.teardown?.();
  post({ type: 'done', execs: n, corpus: kept.length, features: coverage.size });
}

main().catch((err: unknown) => {
  const e = err instanceof Error ? err : new Error(String(err));
  post({ type: 'error', message: e.message, stack: e.stack ?? '' });
});
