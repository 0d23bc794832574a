import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
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
}

export interface LocalHub {
  endpoint: string;
  /** Every request: method, path and Range header. */
  log: { path: string; range?: string }[];
  close(): Promise<void>;
}

const MAX_REQUESTS = 5000;

/** A Hugging Face hub look-alike on 127.0.0.1: revision and tree APIs (tree paginated two entries per page, with
 * `Link: rel="next"`) and `resolve` downloads with Range support and injectable faults. */
export async function startLocalHub(repo: string, files: HubFileSpec[], faults: HubFaults = {}): Promise<LocalHub> {
  const log: LocalHub['log'] = [];
  const cut = new Map(faults.cutAfter);
  const corrupt = new Set(faults.corruptOnce);
  const sha = 'c0ffee' + '0'.repeat(34);
  const tree = files.map((f) => {
    const blob = createHash('sha1').update(`blob ${f.content.length}\0`).update(f.content).digest('hex');
    return f.lfs
      ? { type: 'file', path: f.path, size: f.content.length, oid: blob, lfs: { oid: createHash('sha256').update(f.content).digest('hex'), size: f.content.length, pointerSize: 130 } }
      : { type: 'file', path: f.path, size: f.content.length, oid: blob };
  });

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    log.push({ path: url.pathname, range: req.headers.range });
    if (log.length > MAX_REQUESTS) return void res.writeHead(503).end();
    const api = `/api/models/${repo}`;
    if (url.pathname.startsWith(`${api}/revision/`)) {
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: repo, sha, siblings: files.map((f) => ({ rfilename: f.path })) }));
    }
    if (url.pathname === `${api}/tree/${sha}`) {
      const page = Number(url.searchParams.get('cursor') ?? '0');
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if ((page + 1) * 2 < tree.length) headers.link = `<${api}/tree/${sha}?recursive=true&cursor=${page + 1}>; rel="next"`;
      return void res.writeHead(200, headers).end(JSON.stringify(tree.slice(page * 2, page * 2 + 2)));
    }
    const prefix = `/${repo}/resolve/${sha}/`;
    const file = url.pathname.startsWith(prefix) ? files.find((f) => f.path === decodeURIComponent(url.pathname.slice(prefix.length))) : undefined;
    if (!file) return void res.writeHead(404).end('not found');
    let body = file.content;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (start >= body.length) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
    }
    if (start === 0 && corrupt.delete(file.path)) {
      body = Buffer.from(body);
      body[body.length >> 1] ^= 0xff;
    }
    const slice = body.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'content-length': String(slice.length),
      'accept-ranges': 'bytes',
      ...(range ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    const cutAt = cut.get(file.path);
    if (cutAt !== undefined) {
      cut.delete(file.path);
      res.write(slice.subarray(0, cutAt), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(slice);
  };

  const server = createServer(handle);
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
