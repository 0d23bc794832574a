import { convertCheckpoint, type ConvertProgress } from '../../converter/convert';
import { decoderPrecision } from '../../converter/convertOptions';
import { convertModelFolder, isConvertedModelFolder } from '../../converter/fromModelFolder';
import { DECODER_KINDS, type DecoderKind } from '../../engine/manifest';
import { parse, UsageError, type Command } from '../command';

export const convertCommand: Command = {
  name: 'convert',
  summary: 'Convert a DiffusionVL safetensors checkpoint folder to ONNX (and/or a llama.cpp GGUF text decoder), or add a GGUF decoder to an fp32 model folder',
  usage: [
    'Usage: diffusionvl convert <checkpoint-dir> <out-dir> [--decoder onnx|gguf|both] [--precision P] [--tokenizer <tokenizer.json>] [--vision-tower <dir>] [--quiet]',
    '       diffusionvl convert <fp32-model-dir> <out-dir> --decoder gguf|both --precision fp32|fp16|q8_0|q4_0|q4_k_m [--quiet]',
    '',
    '  The second form adds a GGUF decoder to a converted fp32 model folder whose checkpoint is not at hand: the text',
    '  weights are read back exactly from its ONNX files; the vision tower, embeddings, tokenizer (and with both, the',
    '  ONNX decoder) are copied as they are. fp16 and int4 folders are refused (their weights are not the originals).',
    '',
    '  --decoder     the text decoder and LM head for ONNX Runtime (onnx, default), for llama.cpp as one GGUF file',
    '                (gguf), or both; the vision tower and the embedding table are always written for ONNX Runtime',
    '  --precision   onnx: fp32 (reference, default), fp16 (GPU) or int4 (4-bit weights, block 32: memory and CPU speed)',
    '                gguf, both: fp32, fp16, q8_0, q4_0 or q4_k_m (quantised by llama.cpp; the ONNX parts are then int4)',
    '  --tokenizer   tokenizer.json to ship when the checkpoint has none (default: the Qwen2.5 tokenizer)',
    '  --vision-tower  SigLIP model: folder of the SigLIP tower named by mm_vision_tower (its config.json), when that',
    '                is neither a local folder nor a known hub tower (google/siglip2-so400m-patch14-384 is known)',
    '  --quiet       no progress output',
  ].join('\n'),
  async run(argv) {
    const { values, positionals } = parse(argv, {
      decoder: { type: 'string', default: 'onnx' },
      precision: { type: 'string', default: 'fp32' },
      tokenizer: { type: 'string' },
      'vision-tower': { type: 'string' },
      quiet: { type: 'boolean', default: false },
    });
    if (positionals.length !== 2) throw new UsageError('convert needs <checkpoint-dir> (or a converted fp32 model folder) and <out-dir>');
    const decoder = values.decoder as DecoderKind;
    if (!DECODER_KINDS.includes(decoder)) throw new UsageError(`--decoder must be one of ${DECODER_KINDS.join(', ')}`);
    let chosen: ReturnType<typeof decoderPrecision>;
    try {
      chosen = decoderPrecision(decoder, values.precision);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { precision, ggufType } = chosen;
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
    const fromFolder = isConvertedModelFolder(positionals[0]);
    if (fromFolder && (values.tokenizer !== undefined || values['vision-tower'] !== undefined)) throw new UsageError('--tokenizer and --vision-tower apply to checkpoints; a model folder brings its own');
    const manifest = fromFolder
      ? await convertModelFolder(positionals[0], positionals[1], { decoder, ggufType, onProgress, onNotice })
      : await convertCheckpoint(positionals[0], positionals[1], { precision, decoder, ggufType, tokenizer: values.tokenizer, visionTower: values['vision-tower'], onProgress, onNotice });
    if (showProgress && process.stderr.isTTY) process.stderr.write('\n');
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      `Converted ${manifest.architecture} (${manifest.text.numLayers} layers, hidden ${manifest.text.hiddenSize}, ${decoderSummary(decoder, values.precision)}) to ${positionals[1]} in ${secs}s`,
    );
    return 0;
  },
};

function decoderSummary(decoder: DecoderKind, precision: string): string {
  return decoder === 'onnx' ? precision : `${decoder === 'both' ? 'ONNX and ' : ''}GGUF ${precision} decoder`;
}
