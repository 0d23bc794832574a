import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { HttpError } from './errors';

/** Shortest key accepted from `--api-key-file`: a guessable key on a network address is no key. */
export const MIN_API_KEY_CHARS = 16;

/**
 * The server's API key. Held only as its SHA-256, and compared digest to digest with `timingSafeEqual`, so neither
 * the comparison time nor a log line can leak it; the key itself is never printed.
 */
export class ApiKey {
  private readonly digest: Buffer;

  private constructor(key: string) {
    this.digest = sha256(key);
  }

  /** Reads the key from a file (its first line, trimmed), so it never appears in the process list. */
  static fromFile(path: string): ApiKey {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`--api-key-file ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    const key = text.split(/\r?\n/, 1)[0].trim();
    if (key.length < MIN_API_KEY_CHARS) throw new Error(`--api-key-file ${path}: the key must be at least ${MIN_API_KEY_CHARS} characters on the first line`);
    return new ApiKey(key);
  }

  /** Throws a 401 unless the `Authorization: Bearer <key>` header carries this key. */
  check(authorization: string | undefined): void {
    const m = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
    if (!m) throw new HttpError(401, 'missing API key: send it as `Authorization: Bearer <key>`', 'missing_api_key', null, { 'www-authenticate': 'Bearer' });
    if (!timingSafeEqual(sha256(m[1]), this.digest)) throw new HttpError(401, 'incorrect API key', 'invalid_api_key', null, { 'www-authenticate': 'Bearer' });
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
