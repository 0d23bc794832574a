import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { inflateRawSync } from 'node:zlib';

/** One file of a zip archive, as its central directory lists it. */
export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** The central directory of a zip archive (a .vsix): no zip64, which a package under 4 GB never needs. */
export function zipEntries(zip: Buffer): ZipEntry[] {
  // The end-of-central-directory record is the last 22 bytes plus a comment of up to 64 KiB.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive (no end-of-central-directory record)');
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`bad central directory entry ${n}`);
    const nameLen = zip.readUInt16LE(at + 28);
    entries.push({
      method: zip.readUInt16LE(at + 10),
      compressedSize: zip.readUInt32LE(at + 20),
      size: zip.readUInt32LE(at + 24),
      localHeaderOffset: zip.readUInt32LE(at + 42),
      name: zip.toString('utf8', at + 46, at + 46 + nameLen),
    });
    at += 46 + nameLen + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
  }
  return entries;
}

/** Extracts every file of the archive `file` under `dir` (stored and deflated entries, as vsce writes them). */
export function extractZip(file: string, dir: string): ZipEntry[] {
  const zip = readFileSync(file);
  const root = resolve(dir);
  const entries = zipEntries(zip);
  for (const e of entries) {
    if (e.name.endsWith('/')) continue;
    const out = resolve(root, e.name);
    if (!out.startsWith(root + sep)) throw new Error(`zip entry outside the target folder: ${e.name}`);
    const h = e.localHeaderOffset;
    if (zip.readUInt32LE(h) !== 0x04034b50) throw new Error(`bad local header for ${e.name}`);
    const start = h + 30 + zip.readUInt16LE(h + 26) + zip.readUInt16LE(h + 28);
    const raw = zip.subarray(start, start + e.compressedSize);
    const data = e.method === 0 ? raw : e.method === 8 ? inflateRawSync(raw) : undefined;
    if (!data) throw new Error(`${e.name}: unsupported compression method ${e.method}`);
    if (data.length !== e.size) throw new Error(`${e.name}: ${data.length} bytes extracted, ${e.size} listed`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, data);
  }
  return entries;
}
