import { open } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorF32 } from '../../../server/converter/safetensors';
import { expectRefusal, invariant, type FuzzTarget } from '../target';
import { scratchDir } from './scratch';

/**
 * Input: a .safetensors file. When it starts with `{` it is taken as the JSON header and framed (length prefix, then
 * data bytes) so that mutations explore the header's fields rather than its length; otherwise the bytes are the file.
 * An accepted header's tensors are then read, as the converter does.
 */
let dir = '';
export const target: FuzzTarget = {
  maxLength: 16 * 1024,
  dictionary: ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"F32"', '"F16"', '"BF16"', '"I8"', '"F64"', '"BOOL"', '[0,0]', '[]', '[1]', '[4294967296,2]', 'null', '{}'],
  setup() {
    dir = scratchDir('safetensors');
    return Promise.resolve();
  },
  async fuzz(data) {
    const file = join(dir, 'model.safetensors');
    if (data[0] === 0x7b) {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(data.length));
      writeFileSync(file, Buffer.concat([len, data, Buffer.alloc(64, 0x3c)]));
    } else writeFileSync(file, data);
    let header;
    try {
      header = await readSafetensorsHeader(file);
    } catch (err) {
      expectRefusal(err, { plainNaming: ['model.safetensors'] });
      return;
    }
    invariant(header.dataStart >= 8 && header.dataStart <= header.fileSize, `data section starts at ${header.dataStart}`);
    const fh = await open(file, 'r');
    try {
      for (const t of header.tensors) {
        invariant(t.offset + t.byteLength <= header.fileSize, `tensor ${t.name} ends past the file`);
        const values = await readTensorF32(fh, t);
        invariant(values.length * (t.dtype === 'F32' ? 4 : 2) === t.byteLength, `tensor ${t.name} read ${values.length} values`);
      }
    } finally {
      await fh.close();
    }
  },
};
