import type { ExpectedHash } from './hashes';
import { DiffusionVLError } from '../../engine/errors';
import { isTransientStatus, refusalMessage, retryAfterMs, sleep } from './hubResponses';

/** One repository file the hub lists, with the hash to verify it against. */
export interface HubFile {
  path: string;
  size: number;
  hash: ExpectedHash;
}

export interface HubRepo {
  /** Commit the revision resolved to; downloads pin it so all files come from one commit. */
  sha: string;
  files: HubFile[];
}

export interface HubOptions {
  endpoint: string;
  repo: string;
  revision: string;
  token?: string;
  signal?: AbortSignal;
  /** Fetch implementation (tests may wrap it). */
  fetch?: typeof fetch;
}

/** The hub refused or failed a listing (a `download` error). */
export class HubError extends DiffusionVLError {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super('download', message);
    this.name = 'HubError';
  }
}

interface RevisionInfo {
  sha?: string;
  siblings?: { rfilename?: string }[];
}

interface TreeEntry {
  type?: string;
  path?: string;
  size?: number;
  oid?: string;
  lfs?: { oid?: string; size?: number };
}

export function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

function base(endpoint: string): string {
  return endpoint.replace(/\/+$/, '');
}

/** Path segments escaped individually so `/` stays a separator. */
function encodePath(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}

export function resolveUrl(o: Pick<HubOptions, 'endpoint' | 'repo'>, rev: string, path: string): string {
  return `${base(o.endpoint)}/${o.repo}/resolve/${encodeURIComponent(rev)}/${encodePath(path)}`;
}

/** Listing requests retried on 429/503 and other transient statuses, after the Hub's `Retry-After`. */
const LISTING_ATTEMPTS = 4;

async function getJson<T>(o: HubOptions, url: string): Promise<{ body: T; next?: string }> {
  const f = o.fetch ?? fetch;
  let res: Response;
  for (let attempt = 1; ; attempt++) {
    try {
      res = await f(url, { headers: { accept: 'application/json', ...authHeaders(o.token) }, signal: o.signal });
    } catch (err) {
      if (o.signal?.aborted) throw err;
      throw new HubError(`cannot reach ${base(o.endpoint)}: ${(err as Error).message}`);
    }
    if (res.ok || !isTransientStatus(res.status) || attempt >= LISTING_ATTEMPTS) break;
    await res.body?.cancel();
    await sleep(retryAfterMs(res) ?? 500 * 2 ** (attempt - 1), o.signal);
  }
  if (!res.ok) {
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) throw new HubError(refusalMessage(`${o.repo}`, res), res.status);
    const hint = res.status === 404 ? ' (no such repository or revision)' : isTransientStatus(res.status) ? ` (still failing after ${LISTING_ATTEMPTS} attempts)` : '';
    throw new HubError(`${url}: HTTP ${res.status}${hint}`, res.status);
  }
  const link = res.headers.get('link') ?? '';
  const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)?.[1];
  return { body: (await res.json()) as T, next: next ? new URL(next, url).toString() : undefined };
}

/**
 * Lists a repo revision's files with sizes and hashes: names from the revision endpoint (`siblings`), sizes and hashes
 * from the recursive tree (SHA-256 for LFS files, git blob ids otherwise), following `Link: rel="next"` pages.
 */
export async function listRepo(o: HubOptions): Promise<HubRepo> {
  const api = `${base(o.endpoint)}/api/models/${o.repo}`;
  const { body: rev } = await getJson<RevisionInfo>(o, `${api}/revision/${encodeURIComponent(o.revision)}`);
  const sha = typeof rev.sha === 'string' && rev.sha ? rev.sha : o.revision;
  const names = new Set((rev.siblings ?? []).map((s) => s.rfilename).filter((n): n is string => typeof n === 'string'));

  const entries = new Map<string, HubFile>();
  let url: string | undefined = `${api}/tree/${encodeURIComponent(sha)}?recursive=true`;
  for (let page = 0; url && page < 1000; page++) {
    const { body, next }: { body: TreeEntry[]; next?: string } = await getJson<TreeEntry[]>(o, url);
    if (!Array.isArray(body)) throw new HubError(`${url}: unexpected tree listing`);
    for (const e of body) {
      if (e.type !== 'file' || typeof e.path !== 'string') continue;
      if (e.lfs?.oid && typeof e.lfs.size === 'number') {
        entries.set(e.path, { path: e.path, size: e.lfs.size, hash: { algo: 'sha256', hex: e.lfs.oid.replace(/^sha256:/, '') } });
      } else if (typeof e.oid === 'string' && typeof e.size === 'number') {
        entries.set(e.path, { path: e.path, size: e.size, hash: { algo: 'git-blob-sha1', hex: e.oid } });
      }
    }
    url = next;
  }
  const files: HubFile[] = [];
  for (const name of names.size > 0 ? names : entries.keys()) {
    const f = entries.get(name);
    if (!f) throw new HubError(`${o.repo}: ${name} is listed but the tree has no hash for it; refusing to download unverified files`);
    files.push(f);
  }
  return { sha, files };
}
