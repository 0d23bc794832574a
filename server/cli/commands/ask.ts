import { resolve } from 'node:path';
import { CancelledError, MASK_TEXT, type GenerationEvent } from '../../engine/api';
import { defaultModelDir, isModelDir } from '../../engine/defaultModel';
import { createEngine } from '../../engine/engine';
import { parse, UsageError, type Command } from '../command';
import { GENERATION_OPTIONS as G } from '../../engine/generationOptions';
import { backendFlag, generationFlags, generationHelp, generationOptions, optionFlag, providerFlag, threadsFlag } from './generate';

const usage = `Usage: diffusionvl ask <image> "<question>" [options]

Answers a question about an image, streaming the answer block by block (progress goes to stderr).

Options:
  --model DIR            converted model folder (default: models/default in the project)
  --max-tokens N         answer length budget in tokens (default ${G.maxNewTokens.default}, max ${G.maxNewTokens.max})
  --show-steps           show each denoising step (masked positions as ${MASK_TEXT})
${generationHelp}`;

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
    const options = generationOptions(values, optionFlag('maxNewTokens', 'max-tokens', values['max-tokens']));
    const modelDir = values.model ? resolve(values.model) : defaultModelDir();
    if (!isModelDir(modelDir)) {
      if (values.model) throw new UsageError(`${modelDir} is not a converted model folder (no manifest.json)`);
      throw new UsageError(`no model at ${modelDir}. Run \`npm run setup\` to fetch and convert the default model, or pass --model <converted-dir>.`);
    }
    const tty = process.stderr.isTTY;
    const status = (line: string) => (tty ? process.stderr.write(`\r\x1b[K${line}`) : process.stderr.write(`${line.replace(/\n$/, '')}\n`));
    const started = Date.now();
    status('loading model…');
    const engine = await createEngine({ modelDir, provider: providerFlag(values.provider), backend: backendFlag(values.backend), threads: threadsFlag(values.threads) });
    status(`provider: ${engine.info.provider} (${engine.info.providerReason}); decoder: ${engine.info.backend} (${engine.info.backendReason})${tty ? '\n' : ''}`);
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
