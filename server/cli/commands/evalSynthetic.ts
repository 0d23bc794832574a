import { resolve } from 'node:path';
import { arBaselineDir, DEFAULT_THRESHOLDS, evaluateSynthetic, reportTable } from '../../synthetic/evaluate';
import { intFlag, parse, UsageError, type Command } from '../command';
import { defaultModelDir, isModelDir } from '../../engine/defaultModel';
import { backendFlag, backendHelp, threadsFlag, verifyStepsFlag } from './generate';

const usage = `Usage: diffusionvl eval-synthetic [--seed N] [--count K] [--json] [options]

Draws K fresh synthetic diagrams with questions (any seed N; never the training items) and scores the model's
answers by exact match: the autoregressive baseline (one token per forward) when it is present, then the
block-diffusion model with static remasking and with dynamic remasking at several thresholds. Prints accuracy,
tokens per forward pass and wall time.

Options:
  --seed N               generator seed (default 1)
  --count K              questions to draw (default 100)
  --json                 print the full report as JSON (per question type too)
  --model DIR            converted block-diffusion model (default: models/default)
  --ar-model DIR         converted AR baseline (default: <model>/ar when present)
  --no-ar                skip the AR baseline
  --thresholds LIST      dynamic-remasking thresholds, comma-separated (default ${DEFAULT_THRESHOLDS.join(',')})
  --max-tokens N         generation budget per answer (default 16)
  --verify-steps LIST    run each diffusion configuration at each K of the list (e.g. 1,2,4,8): denoising states
                         per forward, output ids compared question by question with the first K's
  --threads N            ONNX Runtime intra-op threads
${backendHelp}
                         (the report names the backend that ran)`;

export const evalSyntheticCommand: Command = {
  name: 'eval-synthetic',
  summary: 'Score the model on freshly generated synthetic diagrams (accuracy, tokens per forward)',
  usage,
  async run(argv) {
    const { values } = parse(
      argv,
      {
        seed: { type: 'string' },
        count: { type: 'string' },
        json: { type: 'boolean' },
        model: { type: 'string' },
        'ar-model': { type: 'string' },
        'no-ar': { type: 'boolean' },
        thresholds: { type: 'string' },
        'max-tokens': { type: 'string' },
        'verify-steps': { type: 'string' },
        threads: { type: 'string' },
        backend: { type: 'string' },
      },
      false,
    );
    const seed = intFlag(values.seed, 'seed', 1);
    const count = intFlag(values.count, 'count', 100);
    if (count < 1) throw new UsageError('--count must be at least 1');
    const maxNewTokens = intFlag(values['max-tokens'], 'max-tokens', 16);
    if (maxNewTokens < 1) throw new UsageError('--max-tokens must be at least 1');
    const modelDir = values.model ? resolve(values.model) : defaultModelDir();
    if (!isModelDir(modelDir)) throw new UsageError(`${modelDir} is not a converted model folder (no manifest.json)`);
    let arModelDir: string | undefined;
    if (!values['no-ar']) {
      arModelDir = values['ar-model'] ? resolve(values['ar-model']) : arBaselineDir(modelDir);
      if (values['ar-model'] && !isModelDir(arModelDir!)) throw new UsageError(`${arModelDir} is not a converted model folder`);
    }
    let thresholds: number[] | undefined;
    if (values.thresholds !== undefined) {
      thresholds = values.thresholds.split(',').map((s) => Number(s.trim()));
      if (thresholds.some((t) => !(t >= 0 && t <= 1))) throw new UsageError('--thresholds must be numbers between 0 and 1');
    }
    let verifySteps: number[] | undefined;
    if (values['verify-steps'] !== undefined) {
      verifySteps = values['verify-steps'].split(',').map((v) => verifyStepsFlag(v.trim())).map((k) => (k === 'auto' ? NaN : k!));
      if (verifySteps.some((k) => Number.isNaN(k))) throw new UsageError('--verify-steps takes integers here (auto is the default when the flag is absent)');
    }
    const report = await evaluateSynthetic({
      verifySteps,
      modelDir,
      arModelDir,
      seed,
      count,
      thresholds,
      maxNewTokens,
      threads: threadsFlag(values.threads),
      backend: backendFlag(values.backend),
      onProgress: values.json ? undefined : (line) => process.stderr.write(`${line}\n`),
    });
    if (values.json) console.log(JSON.stringify(report, null, 2));
    else console.log(`seed ${seed}, ${count} questions${report.backend ? `, decoder on ${report.backend} (${report.backendReason})` : ''}\n\n${reportTable(report)}`);
    return 0;
  },
};
