import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { MANIFEST_FILE } from '../../server/engine/manifestFile';
import { cacheDir } from './paths';
import { ensureTinyGguf } from './tinyGguf';
import { ensureTinySiglipModel } from './tinySiglipModel';
import { ensureTinyModel } from './tinyModel';

/**
 * A converted tiny model folder (fp32 ONNX) with an F32 GGUF decoder beside its ONNX one, as `convert --decoder both`
 * writes it: hard links to the converted files, the GGUF and a manifest naming both decoders.
 */
export async function ensureTinyLlamaModel(kind: 'qwenvl' | 'siglip'): Promise<string> {
  const onnxDir = kind === 'qwenvl' ? await ensureTinyModel('fp32') : await ensureTinySiglipModel('fp32');
  const gguf = await ensureTinyGguf(kind);
  const dir = join(cacheDir, `${basename(onnxDir)}-with-${basename(gguf, '.gguf')}`);
  if (existsSync(join(dir, MANIFEST_FILE))) return dir;
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(onnxDir)) if (f !== MANIFEST_FILE && !existsSync(join(dir, f))) linkSync(join(onnxDir, f), join(dir, f));
  if (!existsSync(join(dir, 'decoder.gguf'))) linkSync(gguf, join(dir, 'decoder.gguf'));
  const m = JSON.parse(readFileSync(join(onnxDir, MANIFEST_FILE), 'utf8')) as { files: { decoder: string; lmHead: string } };
  const withGguf = { ...m, decoders: { onnx: { decoder: m.files.decoder, lmHead: m.files.lmHead }, gguf: { file: 'decoder.gguf', type: 'fp32' } } };
  writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(withGguf, null, 2));
  return dir;
}
