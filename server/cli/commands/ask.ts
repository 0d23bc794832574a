import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CancelledError, MASK_TEXT, type GenerationEvent } from '../../engine/api';
import { createEngine } from '../../engine/engine';
import { intFlag, parse, UsageError, type Command } from '../command';
import { generationFlags, generationOptions, providerFlag, threadsFlag } from './generate';

/** The project root: the nearest folder above this file (dist/ or out/server/cli/commands/) with a package.json. */
function projectRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return resolve(__dirname, '..');
    dir = up;
  }
  return dir;
}

export function defaultModelDir(): string {
  return join(projectRoot(), 'models', 'default');
}

const usage = `Usage: diffusionvl ask <image> "<question>" [options]

Answers a question about an image, streaming the answer block by block (progress goes to stderr).

Options:
  --model DIR            converted model folder (default: models/default in the project)
  --max-tokens N         answer length budget in tokens (default 128)
  --steps S              denoising steps per block (default 8)
  --strategy static|dynamic, --threshold T   remasking (default static, 0.85)
  --provider P           auto|cpu|cuda|dml|coreml|webgpu (default auto; falls back to cpu with a reason)
  --show-steps           show each denoising step (masked positions as ${MASK_TEXT})
  Also: --block-size, --temperature, --top-k, --top-p, --seed, --alpha, --threads, --no-fused-commit`;

export const askCommand: Command = {
  name: 'ask',
  summary: 'Ask a question about an image; streams the answer',
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      model: { type: 'string' },
      'max-tokens': { type: 'string' },
      'show-steps': { type: 'boolean' },
      ...generationFlags,
    });
    if (positionals.length !== 2) throw new UsageError(`ask takes an image and a question\n\n${usage}`);
    const [imagePath, question] = positionals;
    const options = generationOptions(values, intFlag(values['max-tokens'], 'max-tokens', 128));
    const modelDir = values.model ? resolve(values.model) : defaultModelDir();
    if (!existsSync(join(modelDir, 'manifest.json'))) {
      if (values.model) throw new UsageError(`${modelDir} is not a converted model folder (no manifest.json)`);
      throw new UsageError(`no model at ${modelDir}. Run \`npm run setup\` to fetch and convert the default model, or pass --model <converted-dir>.`);
    }
    const tty = process.stderr.isTTY;
    const status = (line: string) => (tty ? process.stderr.write(`\r\x1b[K${line}`) : process.stderr.write(`${line.replace(/\n$/, '')}\n`));
    const started = Date.now();
    status('loading model…');
    const engine = await createEngine({ modelDir, provider: providerFlag(values.provider, 'auto'), threads: threadsFlag(values.threads) });
    status(`provider: ${engine.info.provider} (${engine.info.providerReason})${tty ? '\n' : ''}`);
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    let printed = '';
    const flushAnswer = (text: string, final: boolean) => {
      // Hold back a trailing replacement char: a multi-byte character may be split across blocks.
      const safe = final ? text : text.replace(/\uFFFD+$/, '');
      if (!safe.startsWith(printed)) return;
      const delta = safe.slice(printed.length);
      if (!delta) return;
      if (tty) process.stderr.write('\r\x1b[K');
      process.stdout.write(delta);
      printed = safe;
    };
    const showSteps = !!values['show-steps'];
    const onEvent = (e: GenerationEvent) => {
      if (showSteps) {
        // One line per denoising step (masked positions visible); the answer is printed once it is complete.
        if (e.kind === 'step') process.stderr.write(`block ${e.block} step ${e.step}: ${e.blockText.replace(/\n/g, '⏎')}\n`);
        return;
      }
      if (e.kind !== 'block') return;
      flushAnswer(e.text, false);
      // Progress only until the answer starts: a status line written after it would break (or, on a terminal, erase) it.
      if (!printed) status(`block ${e.block} · ${e.ids.length} tokens · ${((Date.now() - started) / 1000).toFixed(1)}s`);
    };
    try {
      const r = await engine.ask({ images: [{ path: resolve(imagePath) }], question, options }, { signal: abort.signal, steps: showSteps, onEvent });
      flushAnswer(r.text, true);
      if (!printed.startsWith(r.text) && printed !== r.text) process.stdout.write(`\n${r.text}`);
      process.stdout.write('\n');
      const s = r.stats;
      const f = s.forwards;
      status(
        `${s.generatedTokens} tokens in ${(s.timings.totalMs / 1000).toFixed(1)}s · ${f.prefill + f.denoise + f.commit} forward passes · ` +
          `${engine.info.provider}${s.cache.visionHit ? ' · image cached' : ''}\n`,
      );
      return 0;
    } catch (err) {
      if (err instanceof CancelledError) {
        status('cancelled\n');
        return 130;
      }
      throw err;
    } finally {
      process.off('SIGINT', onSigint);
      await engine.dispose();
    }
  },
};
