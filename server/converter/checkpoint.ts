import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { checkModelIdentity, parseQwenVLConfig, type QwenVLCheckpointConfig } from './checkpointConfig';
import { checkLayerCounts, expectedTensors, qwenVLLayerCounts } from './expectedTensors';
import { fmtShape, readSafetensorsHeader, tensorReader, type SafetensorsHeader, type TensorInfo, type UnsupportedTensor } from './safetensors';

export type { QwenVLCheckpointConfig, QwenVLTextConfig, QwenVLVisionConfig } from './checkpointConfig';
export { expectedTensors, type ExpectedTensor } from './expectedTensors';
export type { SafetensorsDtype, TensorInfo } from './safetensors';

export interface Checkpoint {
  dir: string;
  config: QwenVLCheckpointConfig;
  /** Keyed by canonical name: LLM names as released, `vision.<name>`, `projector.<name>`. */
  tensors: Map<string, TensorInfo>;
  /** Every source file used (JSON and safetensors), for hashing into the manifest. */
  files: { name: string; bytes: number; path: string }[];
  /** Which files each part came from (file names relative to dir). */
  layout: { model: string[]; vision: string[]; projector: string[] };
  has(name: string): boolean;
  /** Throws an Error naming the tensor and the files searched. */
  info(name: string): TensorInfo;
  /** Reads ONE tensor as float32 (F16/BF16 widened exactly), verifying shape if given; holds nothing else. */
  readF32(name: string, expectShape?: number[]): Promise<Float32Array>;
  close(): Promise<void>;
}

/** Prefixes the official vision-tower loader strips: the first one any key carries wins. */
const VISION_PREFIXES = ['model.vision_tower.vision_tower.', 'visual.', 'vision_tower.'];
const PROJECTOR_PREFIX = 'model.mm_projector.';

export type Entry = { info: TensorInfo } | { unsupported: UnsupportedTensor };

export async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`${basename(path)}: cannot read (${(err as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Error(`${basename(path)}: not valid JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${basename(path)}: not a JSON object`);
  return v as Record<string, unknown>;
}

export function entriesOf(h: SafetensorsHeader): [string, Entry][] {
  return [
    ...h.tensors.map((info): [string, Entry] => [info.name, { info }]),
    ...h.unsupported.map((u): [string, Entry] => [u.name, { unsupported: u }]),
  ];
}

/** Picks the model files: model.safetensors, else every *.safetensors.index.json with its shards (checked). */
export async function modelHeaders(dir: string, names: Set<string>): Promise<{ headers: SafetensorsHeader[]; indexFiles: string[] }> {
  if (names.has('model.safetensors')) return { headers: [await readSafetensorsHeader(join(dir, 'model.safetensors'))], indexFiles: [] };
  const indexFiles = [...names].filter((n) => n.endsWith('.safetensors.index.json')).sort();
  if (indexFiles.length === 0) {
    throw new Error(`${dir}: no model.safetensors and no *.safetensors.index.json; not a DiffusionVL checkpoint folder?`);
  }
  const wanted = new Map<string, { shard: string; index: string }>();
  for (const idx of indexFiles) {
    const json = await readJson(join(dir, idx));
    const map = json.weight_map;
    if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new Error(`${idx}: weight_map is missing or not an object`);
    for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
      if (typeof shard !== 'string') throw new Error(`${idx}: weight_map entry for tensor ${tensor} is not a file name`);
      if (!names.has(shard)) throw new Error(`${idx}: tensor ${tensor} is mapped to ${shard}, which is not in ${dir}`);
      wanted.set(tensor, { shard, index: idx });
    }
  }
  const shards = [...new Set([...wanted.values()].map((w) => w.shard))].sort();
  const headers = await Promise.all(shards.map((s) => readSafetensorsHeader(join(dir, s))));
  const present = new Map(headers.map((h) => [basename(h.file), new Set(entriesOf(h).map(([n]) => n))]));
  for (const [tensor, { shard, index }] of wanted) {
    if (!present.get(shard)?.has(tensor)) throw new Error(`${shard}: tensor ${tensor} is listed in ${index} but missing from the shard`);
  }
  return { headers, indexFiles };
}

/** Merges headers into one name → entry map; the same name in two files is ambiguous, so it is an error. */
export function mergeEntries(headers: SafetensorsHeader[]): Map<string, Entry> {
  const all = new Map<string, Entry>();
  for (const h of headers) {
    for (const [name, e] of entriesOf(h)) {
      const prev = all.get(name);
      if (prev) {
        const prevFile = 'info' in prev ? prev.info.file : prev.unsupported.file;
        throw new Error(`${basename(h.file)}: tensor ${name} is also stored in ${basename(prevFile)}`);
      }
      all.set(name, e);
    }
  }
  return all;
}

/** Strips the first of `prefixes` that any key carries (as the official loader does); keys without it are dropped. */
function stripFirstPrefix(entries: Map<string, Entry>, prefixes: string[]): { prefix: string; map: Map<string, Entry> } {
  const keys = [...entries.keys()];
  const prefix = prefixes.find((p) => keys.some((k) => k.startsWith(p)));
  if (prefix === undefined) return { prefix: '', map: new Map(entries) };
  const map = new Map<string, Entry>();
  for (const [k, e] of entries) if (k.startsWith(prefix)) map.set(k.slice(prefix.length), e);
  return { prefix, map };
}

function stripMerger(name: string): string {
  return name.startsWith('merger.') ? name.slice('merger.'.length) : name;
}

export async function openCheckpoint(dirIn: string): Promise<Checkpoint> {
  const dir = resolve(dirIn);
  let listing: string[];
  try {
    listing = await readdir(dir);
  } catch (err) {
    throw new Error(`${dir}: cannot list checkpoint folder (${(err as Error).message})`);
  }
  const names = new Set(listing);
  if (!names.has('config.json')) throw new Error(`${dir}: no config.json; not a checkpoint folder?`);
  const config = await readJson(join(dir, 'config.json'));
  checkModelIdentity(config);
  const visionConfigFile = names.has('vision_config.json') ? await readJson(join(dir, 'vision_config.json')) : undefined;
  const preprocessor = names.has('preprocessor_config.json') ? await readJson(join(dir, 'preprocessor_config.json')) : undefined;

  const { headers, indexFiles } = await modelHeaders(dir, names);
  const modelFiles = headers.map((h) => basename(h.file));
  const modelEntries = mergeEntries(headers);

  // Vision tower: vision_tower.safetensors first (official order), else the model files.
  const canonical = new Map<string, Entry>();
  const used: SafetensorsHeader[] = [...headers];
  let visionFiles = modelFiles;
  let visionEntries: Map<string, Entry>;
  if (names.has('vision_tower.safetensors')) {
    const vh = await readSafetensorsHeader(join(dir, 'vision_tower.safetensors'));
    used.push(vh);
    visionFiles = ['vision_tower.safetensors'];
    visionEntries = stripFirstPrefix(mergeEntries([vh]), VISION_PREFIXES).map;
  } else {
    const { prefix, map } = stripFirstPrefix(modelEntries, VISION_PREFIXES);
    visionEntries = prefix ? map : new Map();
  }
  const visionMerger = new Map<string, Entry>();
  for (const [k, e] of visionEntries) {
    if (k.startsWith('merger.')) visionMerger.set(stripMerger(k), e); // the tower's own merger is deleted at load time
    else canonical.set(`vision.${k}`, e);
  }

  // Projector: model files (what from_pretrained loads), else projector.safetensors, else a merger left in the tower file.
  let projectorFiles = modelFiles;
  let projector = new Map<string, Entry>();
  for (const [k, e] of modelEntries) if (k.startsWith(PROJECTOR_PREFIX)) projector.set(stripMerger(k.slice(PROJECTOR_PREFIX.length)), e);
  if (projector.size === 0 && names.has('projector.safetensors')) {
    const ph = await readSafetensorsHeader(join(dir, 'projector.safetensors'));
    used.push(ph);
    projectorFiles = ['projector.safetensors'];
    for (const [k, e] of entriesOf(ph)) {
      const bare = stripMerger(k.startsWith(PROJECTOR_PREFIX) ? k.slice(PROJECTOR_PREFIX.length) : k);
      if (projector.has(bare)) throw new Error(`projector.safetensors: tensor ${k} duplicates another entry after prefix stripping`);
      projector.set(bare, e);
    }
  }
  if (projector.size === 0 && visionMerger.size > 0) {
    projector = visionMerger;
    projectorFiles = visionFiles;
  }
  for (const [k, e] of projector) canonical.set(`projector.${k}`, e);

  // LLM and anything else in the model files keep their released names.
  for (const [k, e] of modelEntries) {
    if (k.startsWith(PROJECTOR_PREFIX) || VISION_PREFIXES.some((p) => k.startsWith(p))) continue;
    canonical.set(k, e);
  }
  const searched = (name: string): string[] =>
    name.startsWith('vision.') ? visionFiles : name.startsWith('projector.') ? projectorFiles : modelFiles;

  const parsed = parseQwenVLConfig({ config, visionConfigFile, preprocessor, hasLmHead: canonical.has('lm_head.weight') });
  const tensors = new Map<string, TensorInfo>();
  const unsupported = new Map<string, UnsupportedTensor>();
  for (const [k, e] of canonical) {
    if ('info' in e) tensors.set(k, e.info);
    else unsupported.set(k, e.unsupported);
  }
  // Tied heads reuse the embedding (as Hugging Face's tie_weights does, even if a stale copy is stored).
  if (parsed.text.tieWordEmbeddings && tensors.has('model.embed_tokens.weight')) {
    tensors.set('lm_head.weight', tensors.get('model.embed_tokens.weight') as TensorInfo);
    unsupported.delete('lm_head.weight');
  }

  const describe = (name: string, source: string): string => (source === name ? name : `${source} (${name})`);
  const info = (name: string): TensorInfo => {
    const t = tensors.get(name);
    if (t) return t;
    const u = unsupported.get(name);
    if (u) {
      throw new Error(`${basename(u.file)}: tensor ${describe(name, u.name)} has dtype ${u.dtype}; only F32, F16 and BF16 are supported`);
    }
    let why = '';
    if (name === 'lm_head.weight' && !parsed.text.tieWordEmbeddings) why = ' (tie_word_embeddings is false, so the checkpoint must store it)';
    throw new Error(`tensor ${name} not found in ${searched(name).join(', ')}${why}`);
  };

  checkLayerCounts(qwenVLLayerCounts(parsed), (name) => tensors.has(name) || unsupported.has(name), 'config.json');
  for (const exp of expectedTensors(parsed)) {
    const t = info(exp.name);
    const same = t.shape.length === exp.shape.length && t.shape.every((d, i) => d === exp.shape[i]);
    if (!same) {
      const axes = t.shape.length === exp.shape.length ? exp.axes.filter((_, i) => t.shape[i] !== exp.shape[i]) : exp.axes;
      throw new Error(
        `${basename(t.file)}: tensor ${describe(exp.name, t.name)} has shape ${fmtShape(t.shape)}, config expects ${fmtShape(exp.shape)} (${axes.join(', ')})`,
      );
    }
  }

  const jsonFiles = ['config.json', 'vision_config.json', 'preprocessor_config.json', ...indexFiles].filter((n) => names.has(n));
  const files = await Promise.all(
    [...jsonFiles, ...used.map((h) => basename(h.file))].map(async (name) => {
      const path = join(dir, name);
      return { name, bytes: (await stat(path)).size, path };
    }),
  );

  const reader = tensorReader(info, (name, t) => describe(name, t.name));
  return {
    dir,
    config: parsed,
    tensors,
    files,
    layout: { model: [...modelFiles], vision: [...visionFiles], projector: [...projectorFiles] },
    has: (name) => tensors.has(name),
    info,
    ...reader,
  };
}
