/**
 * Byte-level mutations in the manner of libFuzzer's MutationDispatcher: each new input is a corpus entry changed by a
 * few stacked mutations (bit flips, interesting integers, range copies and deletions, crossover with another entry,
 * dictionary tokens, and number rewriting for text formats such as JSON).
 */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** xorshift32: reproducible from the seed the run prints. */
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  chance(oneIn: number): boolean {
    return this.below(oneIn) === 0;
  }
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 0x64];
const INTERESTING_32 = [0, 1, -1, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, -0x80000000, 0xffffffff, 256, 1024, 4096, 65535];
const INTERESTING_NUMBERS = [
  '0', '-1', '1', '2', '3', '7', '8', '14', '27', '255', '256', '384', '65536', '4294967296', '9007199254740993',
  '1e308', '-1e308', '1e-308', '0.5', '-0', 'NaN', '1e400', '100000', '2147483648', '151671', '151645', '99999999',
];

function randomNumberText(rng: Rng): string {
  return rng.chance(3) ? String(rng.below(1 << (1 + rng.below(31))) - (rng.chance(4) ? 1 << 30 : 0)) : INTERESTING_NUMBERS[rng.below(INTERESTING_NUMBERS.length)];
}

export class Mutator {
  constructor(
    private readonly rng: Rng,
    private readonly dictionary: readonly Buffer[],
    private readonly maxLength: number,
  ) {}

  /** A mutated copy of `base`; `other` is a second corpus entry for crossover. */
  mutate(base: Buffer, other: Buffer): Buffer {
    let data: Buffer = Buffer.from(base);
    const rounds = 1 + this.rng.below(this.rng.chance(4) ? 16 : 4);
    for (let i = 0; i < rounds; i++) data = this.once(data, other);
    return data.length > this.maxLength ? data.subarray(0, this.maxLength) : data;
  }

  private once(d: Buffer, other: Buffer): Buffer {
    const r = this.rng;
    const at = (len = d.length) => r.below(len + 1);
    switch (r.below(this.dictionary.length ? 12 : 10)) {
      case 0: {
        if (d.length === 0) return this.insert(d, at(), Buffer.from([r.below(256)]));
        const i = r.below(d.length);
        d[i] ^= 1 << r.below(8);
        return d;
      }
      case 1: {
        if (d.length === 0) return d;
        d[r.below(d.length)] = r.chance(2) ? r.below(256) : INTERESTING_8[r.below(INTERESTING_8.length)];
        return d;
      }
      case 2: {
        const width = [2, 4, 8][r.below(3)];
        if (d.length < width) return d;
        const i = r.below(d.length - width + 1);
        const v = INTERESTING_32[r.below(INTERESTING_32.length)];
        const b = Buffer.alloc(8);
        const little = r.chance(2);
        if (little) b.writeBigInt64LE(BigInt(v));
        else b.writeBigInt64BE(BigInt(v));
        b.copy(d, i, little ? 0 : 8 - width, little ? width : 8);
        return d;
      }
      case 3: {
        // Arithmetic on one byte, 16 or 32-bit word.
        if (d.length < 4) return d;
        const i = r.below(d.length - 3);
        const delta = r.below(70) - 35;
        if (r.chance(2)) d[i] = (d[i] + delta) & 0xff;
        else d.writeUInt32LE((d.readUInt32LE(i) + delta) >>> 0, i);
        return d;
      }
      case 4: {
        if (d.length === 0) return d;
        const start = r.below(d.length);
        const len = 1 + r.below(Math.min(d.length - start, r.chance(8) ? d.length : 16));
        return Buffer.concat([d.subarray(0, start), d.subarray(start + len)]);
      }
      case 5: {
        const n = 1 + r.below(r.chance(8) ? 256 : 8);
        const bytes = Buffer.alloc(n);
        const fill = r.chance(2) ? r.below(256) : -1;
        for (let i = 0; i < n; i++) bytes[i] = fill >= 0 ? fill : r.below(256);
        return this.insert(d, at(), bytes);
      }
      case 6: {
        // Copy (or insert) a range of the input elsewhere: repeated structure (JSON entries, BMP rows).
        if (d.length === 0) return d;
        const start = r.below(d.length);
        const len = 1 + r.below(Math.min(d.length - start, 128));
        const piece = Buffer.from(d.subarray(start, start + len));
        if (r.chance(2)) return this.insert(d, at(), piece);
        piece.copy(d, r.below(d.length), 0);
        return d;
      }
      case 7: {
        // Crossover: the head of one entry, the tail of the other.
        if (other.length === 0) return d;
        const cut = at();
        const from = r.below(other.length);
        return Buffer.concat([d.subarray(0, cut), other.subarray(from, from + 1 + r.below(other.length - from))]);
      }
      case 8: {
        // Rewrite an ASCII number (JSON fields, SVG sizes) or insert one.
        const text = d.toString('latin1');
        const nums = [...text.matchAll(/-?\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi)];
        if (nums.length === 0) return this.insert(d, at(), Buffer.from(randomNumberText(r)));
        const m = nums[r.below(nums.length)];
        const start = m.index ?? 0;
        return Buffer.concat([d.subarray(0, start), Buffer.from(randomNumberText(r), 'latin1'), d.subarray(start + m[0].length)]);
      }
      case 9: {
        // Shuffle a few bytes, or truncate.
        if (d.length < 2) return d;
        if (r.chance(3)) return d.subarray(0, r.below(d.length));
        const i = r.below(d.length);
        const j = r.below(d.length);
        [d[i], d[j]] = [d[j], d[i]];
        return d;
      }
      default: {
        const tok = this.dictionary[r.below(this.dictionary.length)];
        if (r.chance(2) || d.length < tok.length) return this.insert(d, at(), tok);
        tok.copy(d, r.below(d.length - tok.length + 1));
        return d;
      }
    }
  }

  private insert(d: Buffer, at: number, piece: Buffer): Buffer {
    if (d.length + piece.length > this.maxLength) return d;
    return Buffer.concat([d.subarray(0, at), piece, d.subarray(at)]);
  }
}
