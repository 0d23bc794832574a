import { open, rename, rm, stat, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { hashFile, type ExpectedHash } from './hashes';
import { DiffusionVLError } from '../../engine/errors';
import { diskFilledWhileWriting, isNoSpace } from '../../engine/diskFilled';
import { isTransientStatus, refusalMessage, retryAfterMs, sleep } from './hubResponses';

export interface FetchFileOptions {
  url: string;
  dest: string;
  size: number;
  hash: ExpectedHash;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Called as bytes arrive with the file's running total. */
  onBytes?: (done: number) => void;
  /** Network attempts per file (each resumes where the last stopped). */
  maxAttempts?: number;
  /** Abort a connection that sends nothing for this long. */
  stallMs?: number;
  fetch?: typeof fetch;
}

export interface FetchFileResult {
  /** Bytes received over the network. */
  downloaded: number;
  /** Continued from a partial file (an earlier run's or a dropped connection's). */
  resumed: boolean;
  /** Thrown away after a hash mismatch and fetched again. */
  refetched: boolean;
}

export class DownloadError extends DiffusionVLError {
  constructor(message: string) {
    super('download', message);
    this.name = 'DownloadError';
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

class TransientError extends Error {
  constructor(
    message: string,
    /** The server's `Retry-After`, when it said when to come back. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Redirects followed per request (the Hub: at most a renamed repository, then the CDN). */
const MAX_REDIRECTS = 5;

/**
 * Streams `url` into `<dest>.part`, continuing an existing part with an HTTP Range request, then verifies the hash and
 * renames into place, so `dest` only ever exists complete and verified. Dropped connections and stalls retry from the
 * bytes already on disk; a hash mismatch discards the part and fetches the file once more from scratch.
 */
export async function fetchFile(o: FetchFileOptions): Promise<FetchFileResult> {
  const part = `${o.dest}.part`;
  const maxAttempts = o.maxAttempts ?? 6;
  await mkdir(dirname(o.dest), { recursive: true });
  const result: FetchFileResult = { downloaded: 0, resumed: false, refetched: false };
  let lastError = '';
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    o.signal?.throwIfAborted();
    let have = await sizeOf(part);
    if (have > o.size) {
      await rm(part, { force: true });
      have = 0;
    }
    if (have > 0 && have < o.size) result.resumed = true;
    try {
      if (have < o.size) result.downloaded += await receive(o, part, have);
    } catch (err) {
      if (o.signal?.aborted) throw o.signal.reason ?? err;
      if (!(err instanceof TransientError)) throw err;
      lastError = err.message;
      await sleep(err.retryAfterMs ?? Math.min(200 * 2 ** attempt, 5000), o.signal);
      continue;
    }
    const got = await sizeOf(part);
    if (got !== o.size) {
      lastError = `${got} of ${o.size} bytes`;
      continue;
    }
    if ((await hashFile(part, o.hash.algo, o.signal)) === o.hash.hex) {
      await rename(part, o.dest);
      return result;
    }
    await rm(part, { force: true });
    if (result.refetched) throw new DownloadError(`${o.url}: content does not match the hub's ${o.hash.algo} twice; the mirror may be serving a different file`);
    result.refetched = true;
    attempt--; // A corrupted copy is not a network failure; it gets its own fresh try.
  }
  throw new DownloadError(`${o.url}: giving up after ${maxAttempts} attempts (${lastError})`);
}

/** One request: appends to `part` from byte `have`. Returns bytes written. Network trouble → TransientError. */
async function receive(o: FetchFileOptions, part: string, have: number): Promise<number> {
  const stall = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stall.signal]) : stall.signal;
  const stallMs = o.stallMs ?? 60_000;
  let timer = setTimeout(() => stall.abort(), stallMs);
  const headers: Record<string, string> = { ...o.headers, 'accept-encoding': 'identity' };
  if (have > 0) headers.range = `bytes=${have}-`;
  let res: Response;
  try {
    res = await request(o, headers, signal);
  } catch (err) {
    clearTimeout(timer);
    if (o.signal?.aborted || err instanceof DownloadError) throw err;
    throw new TransientError(`${o.url}: ${(err as Error).message}`);
  }
  let offset = have;
  if (res.status === 416) {
    // The part is not a prefix of the file any more; start over.
    clearTimeout(timer);
    await res.body?.cancel();
    await rm(part, { force: true });
    throw new TransientError(`${o.url}: range not satisfiable`);
  }
  if (res.status === 200) offset = 0;
  else if (res.status === 206) {
    const start = Number(/bytes\s+(\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1]);
    if (start !== have) offset = 0;
  } else {
    clearTimeout(timer);
    await res.body?.cancel();
    const msg = `${o.url}: HTTP ${res.status}`;
    if (isTransientStatus(res.status)) throw new TransientError(msg, retryAfterMs(res));
    throw new DownloadError(res.status === 401 || res.status === 403 ? refusalMessage(o.url, res) : msg);
  }
  if (!res.body) throw new TransientError(`${o.url}: empty response`);
  if (offset === 0 && res.status === 206) {
    clearTimeout(timer);
    await res.body.cancel();
    await rm(part, { force: true });
    throw new TransientError(`${o.url}: server answered a different range`);
  }
  const fh = await open(part, offset === 0 ? 'w' : 'a');
  const noSpace = (err: unknown): never => {
    throw isNoSpace(err) ? diskFilledWhileWriting(part, 'download') : err;
  };
  let written = 0;
  try {
    const reader = res.body.getReader();
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (o.signal?.aborted) throw o.signal.reason ?? err;
        throw new TransientError(`${o.url}: connection lost after ${offset + written} bytes (${(err as Error).message})`);
      }
      if (chunk.done) break;
      clearTimeout(timer);
      timer = setTimeout(() => stall.abort(), stallMs);
      // What was written stays a prefix of the file: the download resumes from it once there is room.
      await fh.write(chunk.value).catch(noSpace);
      written += chunk.value.byteLength;
      if (offset + written > o.size) throw new TransientError(`${o.url}: more bytes than the hub listed`);
      o.onBytes?.(offset + written);
    }
    await fh.sync().catch(noSpace);
  } finally {
    clearTimeout(timer);
    await fh.close();
  }
  return written;
}

/**
 * GET with the redirects followed here rather than by fetch: the Hub answers an LFS file with a 302 whose
 * `X-Linked-Size`/`X-Linked-Etag` name the file it redirects to (checked against the listing before a byte is
 * fetched), and the `Location` is a signed URL on another host, which must get neither our token nor any other
 * credential (the signature is its authorisation). A relative redirect (a renamed repository) keeps them.
 */
async function request(o: FetchFileOptions, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
  let url = o.url;
  let h = headers;
  for (let hop = 0; ; hop++) {
    const res = await (o.fetch ?? fetch)(url, { headers: h, signal, redirect: 'manual' });
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || !location) return res;
    await res.body?.cancel();
    checkLinked(o, res);
    if (hop >= MAX_REDIRECTS) throw new DownloadError(`${o.url}: more than ${MAX_REDIRECTS} redirects`);
    const next = new URL(location, url);
    if (next.origin !== new URL(url).origin) h = Object.fromEntries(Object.entries(h).filter(([k]) => !/^(authorization|cookie)$/i.test(k)));
    url = next.toString();
  }
}

/** The redirect's own description of the file must match what the listing promised (the same pinned commit). */
function checkLinked(o: FetchFileOptions, res: Response): void {
  const size = res.headers.get('x-linked-size');
  if (size !== null && /^\d+$/.test(size) && Number(size) !== o.size) {
    throw new DownloadError(`${o.url}: the Hub now gives this file as ${size} bytes, its listing said ${o.size}; the repository changed while downloading — try again`);
  }
  const etag = res.headers.get('x-linked-etag')?.replace(/^W\//, '').replace(/"/g, '');
  if (etag && o.hash.algo === 'sha256' && /^[0-9a-f]{64}$/.test(etag) && etag !== o.hash.hex) {
    throw new DownloadError(`${o.url}: the Hub now gives this file's SHA-256 as ${etag}, its listing said ${o.hash.hex}; the repository changed while downloading — try again`);
  }
}
