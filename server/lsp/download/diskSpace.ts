import { mkdir, statfs } from 'node:fs/promises';
import { DiffusionVLError } from '../../engine/errors';

export class DiskFullError extends DiffusionVLError {
  constructor(
    readonly dir: string,
    readonly needed: number,
    readonly free: number,
  ) {
    super('diskFull', `not enough disk space in ${dir}: need ${gib(needed)}, ${gib(free)} free`);
    this.name = 'DiskFullError';
  }
}

function gib(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/** Bytes available to this (unprivileged) process on the volume holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** Throws DiskFullError unless `needed` bytes (plus a small safety margin) are free under `dir`. */
export async function ensureFreeSpace(dir: string, needed: number): Promise<void> {
  const margin = 64 * 1024 * 1024;
  const free = await freeBytes(dir);
  if (free < needed + margin) throw new DiskFullError(dir, needed + margin, free);
}
