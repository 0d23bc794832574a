import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A file the fake hub serves. LFS files are listed with their SHA-256, others with their git blob id. */
export interface HubFileSpec {
  path: string;
  content: Buffer;
  lfs: boolean;
}

export interface HubFaults {
  /** First request for this file sends this many bytes, then drops the connection. */
  cutAfter?: Map<string, number>;
  /** First complete response for this file has one byte flipped. */
  corruptOnce?: Set<string>;
  /** Every response for this file has one byte flipped, while its ETag and the listing keep the true hash. */
  corruptAlways?: Set<string>;
  /** First request (API or file) answered with this status and `Retry-After` (seconds), as the Hub rate-limits. */
  busyOnce?: Map<string, { status: 429 | 503; retryAfter: number }>;
  /** First Range request for this file answered 416 (`Content-Range: bytes *\/size`). */
  rangeGoneOnce?: Set<string>;
  /** Gated or private: without `Authorization: Bearer <token>` the Hub answers 401 (403 once a wrong token is sent). */
  requireToken?: string;
  /** First request for this file sends this many bytes, then waits for `release(path)` before sending the rest. */
  holdAfter?: Map<string, number>;
  /** X-Linked-Size / X-Linked-Etag on the redirect differ from the listing (a file changed behind the pinned commit). */
  linkedMismatch?: Set<string>;
}

export interface HubRequest {
  /** 'hub' for the API and `resolve`, 'cdn' for the signed-URL host LFS files redirect to. */
  host: 'hub' | 'cdn';
  method: string;
  path: string;
  range?: string;
  /** The repository file the request was for, if any. */
  file?: string;
  authorization?: string;
  status?: number;
  at: number;
}

export interface LocalHub {
  endpoint: string;
  /** The CDN's origin (another port: another origin for fetch, as the real CDN is another host). */
  cdn: string;
  /** Every request, in order. */
  log: HubRequest[];
  sha: string;
  /** Resolves once a held file's first bytes were sent (see HubFaults.holdAfter). */
  held(path: string): Promise<void>;
  /** Sends the rest of a held file. */
  release(path: string): void;
  close(): Promise<void>;
}

const MAX_REQUESTS = 5000;

/**
 * A Hugging Face Hub look-alike on 127.0.0.1, replaying the responses the real Hub sends, in the shapes
 * `huggingface_hub`'s `file_download.py` handles:
 * - the revision and tree APIs (tree paginated two entries per page, with `Link: rel="next"`);
 * - `resolve` (GET or HEAD) carries `X-Repo-Commit` and `ETag`; for a regular file it serves the bytes (ETag = git blob
 *   id), for an LFS file it answers 302 with `X-Linked-Etag` (the SHA-256), `X-Linked-Size` and a `Location` on
 *   another host with a signed, expiring query;
 * - that CDN host checks the signature, refuses a request that also carries `Authorization` (as S3 refuses two auth
 *   mechanisms), and answers `Range` with 206, or 416 with `Content-Range: bytes *\/size` past the end;
 * - 429/503 with `Retry-After`, 401 for gated or private repositories without a token (with `X-Error-Code` and
 *   `X-Error-Message`), 403 with a token that has no access.
 */
export async function startLocalHub(repo: string, files: HubFileSpec[], faults: HubFaults = {}): Promise<LocalHub> {
  const log: HubRequest[] = [];
  const cut = new Map(faults.cutAfter);
  const corrupt = new Set(faults.corruptOnce);
  const busy = new Map(faults.busyOnce);
  const rangeGone = new Set(faults.rangeGoneOnce);
  const hold = new Map(faults.holdAfter);
  const holds = new Map<string, { reached: Promise<void>; reach: () => void; released: Promise<void>; release: () => void }>();
  const holdOf = (path: string) => {
    let h = holds.get(path);
    if (!h) {
      let reach!: () => void;
      let release!: () => void;
      const reached = new Promise<void>((r) => (reach = r));
      const released = new Promise<void>((r) => (release = r));
      h = { reached, reach, released, release };
      holds.set(path, h);
    }
    return h;
  };
  const secret = randomBytes(16);
  const sha = 'c0ffee' + '0'.repeat(34);
  const sha256 = new Map(files.map((f) => [f.path, createHash('sha256').update(f.content).digest('hex')]));
  const blob = new Map(files.map((f) => [f.path, createHash('sha1').update(`blob ${f.content.length}\0`).update(f.content).digest('hex')]));
  const tree = files.map((f) =>
    f.lfs
      ? { type: 'file', path: f.path, size: f.content.length, oid: blob.get(f.path), lfs: { oid: sha256.get(f.path), size: f.content.length, pointerSize: 130 } }
      : { type: 'file', path: f.path, size: f.content.length, oid: blob.get(f.path) },
  );
  let cdnOrigin = '';
  const sign = (path: string, expires: number) => createHmac('sha256', secret).update(`${path}|${expires}`).digest('hex');

  const record = (host: HubRequest['host'], req: IncomingMessage, res: ServerResponse, file?: string): HubRequest => {
    const entry: HubRequest = { host, method: req.method ?? 'GET', path: new URL(req.url ?? '/', 'http://x').pathname, range: req.headers.range, file, authorization: req.headers.authorization, at: Date.now() };
    log.push(entry);
    res.on('close', () => (entry.status = res.statusCode));
    return entry;
  };

  /** The bytes of a file, with Range and the body faults. */
  const serveBytes = (req: IncomingMessage, res: ServerResponse, file: HubFileSpec, headers: Record<string, string>): void => {
    let body = file.content;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (start >= body.length || rangeGone.delete(file.path)) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
    }
    if ((start === 0 && corrupt.delete(file.path)) || faults.corruptAlways?.has(file.path)) {
      body = Buffer.from(body);
      body[body.length >> 1] ^= 0xff;
    }
    const slice = body.subarray(start);
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'content-length': String(slice.length),
      'accept-ranges': 'bytes',
      ...(range ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    if (req.method === 'HEAD') return void res.end();
    const holdAt = hold.get(file.path);
    if (holdAt !== undefined) {
      hold.delete(file.path);
      const h = holdOf(file.path);
      res.write(slice.subarray(0, holdAt), () => h.reach());
      void h.released.then(() => {
        if (!res.destroyed) res.end(slice.subarray(holdAt));
      });
      return;
    }
    const cutAt = cut.get(file.path);
    if (cutAt !== undefined) {
      cut.delete(file.path);
      res.write(slice.subarray(0, cutAt), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(slice);
  };

  const refuseBusy = (res: ServerResponse, key: string): boolean => {
    const b = busy.get(key);
    if (!b) return false;
    busy.delete(key);
    res.writeHead(b.status, { 'retry-after': String(b.retryAfter), 'content-type': 'text/plain' }).end(b.status === 429 ? 'Too Many Requests' : 'Service Unavailable');
    return true;
  };

  const refuseUnauthorised = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (faults.requireToken === undefined) return false;
    const auth = req.headers.authorization;
    if (auth === `Bearer ${faults.requireToken}`) return false;
    if (auth) {
      res.writeHead(403, { 'x-error-code': 'GatedRepo', 'x-error-message': `Access to model ${repo} is restricted and you are not in the authorized list. Visit https://huggingface.co/${repo} to ask for access.` }).end();
    } else {
      res.writeHead(401, { 'x-error-code': 'GatedRepo', 'x-error-message': `Access to model ${repo} is restricted. You must have access to it and be authenticated to access it. Please log in.` }).end();
    }
    return true;
  };

  const hub = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const prefix = `/${repo}/resolve/${sha}/`;
    const file = url.pathname.startsWith(prefix) ? files.find((f) => f.path === decodeURIComponent(url.pathname.slice(prefix.length))) : undefined;
    record('hub', req, res, file?.path);
    if (log.length > MAX_REQUESTS) return void res.writeHead(503).end();
    const api = `/api/models/${repo}`;
    if (url.pathname.startsWith(api) && refuseBusy(res, 'api')) return;
    if (refuseUnauthorised(req, res)) return;
    if (url.pathname.startsWith(`${api}/revision/`)) {
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: repo, sha, siblings: files.map((f) => ({ rfilename: f.path })) }));
    }
    if (url.pathname === `${api}/tree/${sha}`) {
      const page = Number(url.searchParams.get('cursor') ?? '0');
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if ((page + 1) * 2 < tree.length) headers.link = `<${api}/tree/${sha}?recursive=true&cursor=${page + 1}>; rel="next"`;
      return void res.writeHead(200, headers).end(JSON.stringify(tree.slice(page * 2, page * 2 + 2)));
    }
    if (!file) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-error-message': 'Entry not found' }).end('Entry not found');
    if (refuseBusy(res, file.path)) return;
    const common = { 'x-repo-commit': sha };
    if (!file.lfs) return serveBytes(req, res, file, { ...common, etag: `"${blob.get(file.path)}"` });
    const wrong = faults.linkedMismatch?.has(file.path);
    const expires = Math.floor(Date.now() / 1000) + 3600;
    const cdnPath = `/repos/${sha256.get(file.path)}`;
    const q = new URLSearchParams({ 'response-content-disposition': `attachment; filename="${file.path.split('/').pop()}"`, Expires: String(expires), Signature: sign(cdnPath, expires) });
    res.writeHead(302, {
      ...common,
      etag: `"${blob.get(file.path)}"`,
      'x-linked-etag': `"${wrong ? 'f'.repeat(64) : sha256.get(file.path)}"`,
      'x-linked-size': String(file.content.length + (wrong ? 1 : 0)),
      location: `${cdnOrigin}${cdnPath}?${q}`,
    }).end();
  };

  const cdn = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const hex = /^\/repos\/([0-9a-f]{64})$/.exec(url.pathname)?.[1];
    const file = files.find((f) => sha256.get(f.path) === hex);
    record('cdn', req, res, file?.path);
    if (!file) return void res.writeHead(404).end();
    if (req.headers.authorization) return void res.writeHead(400, { 'content-type': 'application/xml' }).end('<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>');
    const expires = Number(url.searchParams.get('Expires'));
    if (url.searchParams.get('Signature') !== sign(url.pathname, expires) || expires < Date.now() / 1000) {
      return void res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code></Error>');
    }
    serveBytes(req, res, file, { etag: `"${sha256.get(file.path)}"` });
  };

  const listen = async (handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; origin: string }> => {
    const server = createServer(handler);
    server.requestTimeout = 30_000;
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  };
  const h = await listen(hub);
  const c = await listen(cdn);
  cdnOrigin = c.origin;
  const close = (s: Server) =>
    new Promise<void>((resolve) => {
      s.closeAllConnections();
      s.close(() => resolve());
    });
  return {
    endpoint: h.origin,
    cdn: c.origin,
    log,
    sha,
    held: (path) => holdOf(path).reached,
    release: (path) => holdOf(path).release(),
    close: async () => {
      for (const h of holds.values()) h.release();
      await Promise.all([close(h.server), close(c.server)]);
    },
  };
}
