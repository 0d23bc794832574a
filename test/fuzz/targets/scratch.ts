import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A private temporary folder for a target's files, removed when the process exits. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `dvl-fuzz-${prefix}-`));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Splits one fuzz input into `n` parts at NUL bytes (several files from one input); missing parts are undefined. */
export function splitParts(data: Buffer, n: number): (Buffer | undefined)[] {
  const parts: (Buffer | undefined)[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    if (start > data.length) {
      parts.push(undefined);
      continue;
    }
    const end = i === n - 1 ? -1 : data.indexOf(0, start);
    parts.push(data.subarray(start, end < 0 ? data.length : end));
    start = end < 0 ? data.length + 1 : end + 1;
  }
  return parts;
}
