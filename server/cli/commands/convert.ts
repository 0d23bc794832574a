import { convertCheckpoint, type ConvertProgress } from '../../converter/convert';
import { PRECISIONS, type Precision } from '../../engine/manifest';
import { parse, UsageError, type Command } from '../command';

export const convertCommand: Command = {
  name: 'convert',
  summary: 'Convert a DiffusionVL safetensors checkpoint folder to ONNX',
  usage: [
    'Usage: diffusionvl convert <checkpoint-dir> <out-dir> [--precision fp32|fp16|int4] [--tokenizer <tokenizer.json>] [--vision-tower <dir>] [--quiet]',
    '',
    '  --precision   fp32 (reference, default), fp16 (GPU) or int4 (4-bit weights, block 32: memory and CPU speed)',
    '  --tokenizer   tokenizer.json to ship when the checkpoint has none (default: the Qwen2.5 tokenizer)',
    '  --vision-tower  SigLIP model: folder of the SigLIP tower named by mm_vision_tower (its config.json), when that',
    '                is neither a local folder nor a known hub tower (google/siglip2-so400m-patch14-384 is known)',
    '  --quiet       no progress output',
  ].join('\n'),
  async run(argv) {
    const { values, positionals } = parse(argv, {
      precision: { type: 'string', default: 'fp32' },
      tokenizer: { type: 'string' },
      'vision-tower': { type: 'string' },
      quiet: { type: 'boolean', default: false },
    });
    if (positionals.length !== 2) throw new UsageError('convert needs <checkpoint-dir> and <out-dir>');
    const precision = values.precision as Precision;
    if (!PRECISIONS.includes(precision)) throw new UsageError(`--precision must be one of ${PRECISIONS.join(', ')}`);
    const started = Date.now();
    const showProgress = !values.quiet;
    let last = 0;
    const onProgress = (p: ConvertProgress) => {
      const now = Date.now();
      if (!showProgress || (now - last < 200 && p.stage !== 'done')) return;
      last = now;
      const pct = p.total ? Math.floor((100 * p.done) / p.total) : 0;
      const line = `[${String(pct).padStart(3)}%] ${p.stage}${p.tensor ? ` ${p.tensor}` : ''}`;
      if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
      else process.stderr.write(`${line}\n`);
    };
    const onNotice = (message: string) => {
      if (!values.quiet) process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}note: ${message}\n`);
    };
    const manifest = await convertCheckpoint(positionals[0], positionals[1], { precision, tokenizer: values.tokenizer, visionTower: values['vision-tower'], onProgress, onNotice });
    if (showProgress && process.stderr.isTTY) process.stderr.write('\n');
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      `Converted ${manifest.architecture} (${manifest.text.numLayers} layers, hidden ${manifest.text.hiddenSize}, ${precision}) to ${positionals[1]} in ${secs}s`,
    );
    return 0;
  },
};
