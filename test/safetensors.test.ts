import { strict as assert } from 'node:assert';
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { f32ToBf16Bits, f32ToF16Bits } from '../server/engine/half';
import { readSafetensorsHeader, readTensorF32, type SafetensorsDtype } from '../server/converter/safetensors';
import { writeSafetensors } from './helpers/checkpoint/safetensorsWriter';
import { rejects } from './helpers/assertRejects';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dvl-safetensors-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes a safetensors file from a literal header object and raw data bytes (to forge malformed files). */
async function forge(name: string, header: unknown, data: Uint8Array, rawLen?: bigint): Promise<string> {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(rawLen ?? BigInt(json.length));
  const path = join(dir, name);
  await writeFile(path, Buffer.concat([len, json, data]));
  return path;
}

async function readAll(path: string): Promise<Map<string, Float32Array>> {
  const h = await readSafetensorsHeader(path);
  const fh = await open(path, 'r');
  try {
    const out = new Map<string, Float32Array>();
    for (const t of h.tensors) out.set(t.name, await readTensorF32(fh, t));
    return out;
  } finally {
    await fh.close();
  }
}

function halfBytes(bits: number[]): Uint8Array {
  const b = Buffer.alloc(bits.length * 2);
  bits.forEach((v, i) => b.writeUInt16LE(v, i * 2));
  return b;
}

describe('safetensors reader: widening', () => {
  it('widens F16 exactly, including subnormals, zeros, infinities and NaN', async () => {
    const bits = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x3555, 0x8001];
    const path = await forge('f16.safetensors', { h: { dtype: 'F16', shape: [bits.length], data_offsets: [0, bits.length * 2] } }, halfBytes(bits));
    const v = (await readAll(path)).get('h') as Float32Array;
    assert.ok(Object.is(v[0], 0));
    assert.ok(Object.is(v[1], -0));
    assert.equal(v[2], 2 ** -24);
    assert.equal(v[3], 1023 * 2 ** -24);
    assert.equal(v[4], 2 ** -14);
    assert.equal(v[5], 1);
    assert.equal(v[6], -2);
    assert.equal(v[7], 65504);
    assert.equal(v[8], Infinity);
    assert.equal(v[9], -Infinity);
    assert.ok(Number.isNaN(v[10]));
    assert.equal(v[11], Math.fround(1 + 0x155 / 1024) / 4);
    assert.equal(v[12], -(2 ** -24));
  });

  it('widens BF16 by a 16-bit shift', async () => {
    const bits = [0x3f80, 0xc040, 0x0001, 0x7f80, 0xff80, 0x7fc0, 0x3e4c];
    const path = await forge('bf16.safetensors', { b: { dtype: 'BF16', shape: [bits.length], data_offsets: [0, bits.length * 2] } }, halfBytes(bits));
    const v = (await readAll(path)).get('b') as Float32Array;
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    bits.forEach((b, i) => {
      u[0] = b << 16;
      if (Number.isNaN(f[0])) assert.ok(Number.isNaN(v[i]));
      else assert.equal(v[i], f[0]);
    });
    assert.equal(v[0], 1);
    assert.equal(v[1], -3);
  });

  it('narrows with round-to-nearest-even (writer side) and reads back what it wrote', async () => {
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie → even
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // exact half of the smallest subnormal → even (zero)
    assert.equal(f32ToF16Bits(3 * 2 ** -26), 0x0001);
    assert.equal(f32ToF16Bits(65520), 0x7c00); // rounds up to inf
    assert.equal(f32ToF16Bits(65519), 0x7bff);
    assert.equal(f32ToF16Bits(-0), 0x8000);
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80);
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(f32ToBf16Bits(NaN) & 0x7fc0, 0x7fc0);

    const n = 3000;
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = Math.sin(i * 0.37) * 10 ** ((i % 10) - 6);
    for (const dtype of ['F32', 'F16', 'BF16'] as SafetensorsDtype[]) {
      const path = join(dir, `rt-${dtype}.safetensors`);
      await writeSafetensors(path, [
        { name: 'x', dtype, shape: [30, 100], open: () => (chunk, start) => chunk.set(values.subarray(start, start + chunk.length)) },
        { name: 'empty', dtype, shape: [0, 4], open: () => () => undefined },
      ]);
      const got = await readAll(path);
      const x = got.get('x') as Float32Array;
      assert.equal(x.length, n);
      assert.equal((got.get('empty') as Float32Array).length, 0);
      const relTol = dtype === 'F32' ? 0 : dtype === 'F16' ? 2 ** -11 : 2 ** -8;
      for (let i = 0; i < n; i++) {
        const want = values[i];
        if (dtype === 'F16' && Math.abs(want) < 2 ** -14) assert.ok(Math.abs(x[i] - want) <= 2 ** -25, `${dtype}[${i}]`);
        else assert.ok(Math.abs(x[i] - want) <= Math.abs(want) * relTol, `${dtype}[${i}]: ${x[i]} vs ${want}`);
      }
    }
  });
});

describe('safetensors reader: malformed files name the file and tensor', () => {
  const data8 = new Uint8Array(8);

  it('rejects a file too short to hold the header length', async () => {
    const path = join(dir, 'tiny.safetensors');
    await writeFile(path, Buffer.alloc(5));
    await rejects(readSafetensorsHeader(path), 'tiny.safetensors', /truncated/);
  });

  it('rejects an absurd or overlong header length', async () => {
    const huge = await forge('huge.safetensors', {}, data8, 1n << 40n);
    await rejects(readSafetensorsHeader(huge), 'huge.safetensors', /header length/);
    const past = await forge('past.safetensors', {}, data8, 1000n);
    await rejects(readSafetensorsHeader(past), 'past.safetensors', /past the end/);
  });

  it('rejects a header that is not JSON', async () => {
    const path = join(dir, 'garbage.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(4n);
    await writeFile(path, Buffer.concat([len, Buffer.from('{nop')]));
    await rejects(readSafetensorsHeader(path), 'garbage.safetensors', /not valid JSON/);
  });

  it('rejects a truncated file (tensor data beyond the end)', async () => {
    const path = await forge(
      'trunc.safetensors',
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } },
      new Uint8Array(24),
    );
    await readSafetensorsHeader(path); // whole file is fine
    const fh = await open(path, 'r');
    const stat = await fh.stat();
    await fh.close();
    await truncate(path, stat.size - 4);
    await rejects(readSafetensorsHeader(path), 'trunc.safetensors', 'tensor b', /truncated/);
  });

  it('rejects offsets beyond the end of the file', async () => {
    const path = await forge('beyond.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, new Uint8Array(16));
    await rejects(readSafetensorsHeader(path), 'beyond.safetensors', 'tensor w');
  });

  it('rejects overlapping tensors', async () => {
    const path = await forge(
      'overlap.safetensors',
      { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } },
      new Uint8Array(16),
    );
    await rejects(readSafetensorsHeader(path), 'overlap.safetensors', 'tensor b', 'tensor a', /overlaps/);
  });

  it('rejects a span that disagrees with shape × dtype', async () => {
    const path = await forge('span.safetensors', { w: { dtype: 'F16', shape: [3, 2], data_offsets: [0, 8] } }, new Uint8Array(16));
    await rejects(readSafetensorsHeader(path), 'span.safetensors', 'tensor w', /\[3,2\]/, /needs 12/);
  });

  it('rejects an unknown dtype and reports unsupported but valid ones separately', async () => {
    const unk = await forge('unk.safetensors', { w: { dtype: 'Q4', shape: [2], data_offsets: [0, 2] } }, data8);
    await rejects(readSafetensorsHeader(unk), 'unk.safetensors', 'tensor w', /unknown dtype/);
    const i8 = await forge('i8.safetensors', { q: { dtype: 'I8', shape: [8], data_offsets: [0, 8] } }, data8);
    const h = await readSafetensorsHeader(i8);
    assert.equal(h.tensors.length, 0);
    assert.deepEqual(h.unsupported.map((u) => [u.name, u.dtype]), [['q', 'I8']]);
  });

  it('rejects malformed shape and offsets entries', async () => {
    const shape = await forge('shape.safetensors', { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, data8);
    await rejects(readSafetensorsHeader(shape), 'shape.safetensors', 'tensor w', /shape/);
    const offs = await forge('offs.safetensors', { w: { dtype: 'F32', shape: [1], data_offsets: [4] } }, data8);
    await rejects(readSafetensorsHeader(offs), 'offs.safetensors', 'tensor w', /data_offsets/);
  });

  it('reports a file cut short while reading a tensor', async () => {
    const path = await forge('cut.safetensors', { w: { dtype: 'BF16', shape: [8], data_offsets: [0, 16] } }, new Uint8Array(16));
    const h = await readSafetensorsHeader(path);
    await truncate(path, h.fileSize - 6);
    const fh = await open(path, 'r');
    try {
      await rejects(readTensorF32(fh, h.tensors[0]), 'cut.safetensors', 'tensor w', /truncated/);
    } finally {
      await fh.close();
    }
  });
});
