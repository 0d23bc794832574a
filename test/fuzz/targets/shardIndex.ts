import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { modelHeaders } from '../../../server/converter/checkpoint';
import { expectRefusal, invariant, type FuzzTarget } from '../target';
import { scratchDir } from './scratch';

/** A small valid shard holding the named F32 tensors of shape [2]. */
function shard(names: string[]): Buffer {
  const header: Record<string, unknown> = {};
  names.forEach((n, i) => (header[n] = { dtype: 'F32', shape: [2], data_offsets: [i * 8, i * 8 + 8] }));
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(names.length * 8)]);
}

/**
 * Input: model.safetensors.index.json, next to two real shards; read as the checkpoint readers of both architectures
 * pick their model files.
 */
let dir = '';
const SHARDS = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
export const target: FuzzTarget = {
  maxLength: 8 * 1024,
  dictionary: ['"weight_map"', '"metadata"', '"total_size"', `"${SHARDS[0]}"`, `"${SHARDS[1]}"`, '"a.weight"', '"b.weight"', '"c.weight"', '"../model.safetensors"', 'null', '{}', '[]'],
  setup() {
    dir = scratchDir('shards');
    writeFileSync(join(dir, SHARDS[0]), shard(['a.weight', 'b.weight']));
    writeFileSync(join(dir, SHARDS[1]), shard(['c.weight']));
    return Promise.resolve();
  },
  async fuzz(data) {
    const index = 'model.safetensors.index.json';
    writeFileSync(join(dir, index), data);
    let result;
    try {
      result = await modelHeaders(dir, new Set([...SHARDS, index]));
    } catch (err) {
      expectRefusal(err, { plainNaming: [index, ...SHARDS] });
      return;
    }
    invariant(result.headers.every((h) => SHARDS.some((s) => h.file === join(dir, s))), 'a header from outside the checkpoint folder');
  },
};
