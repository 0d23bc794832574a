import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DiffusionVLError } from '../../engine/errors';
import { ensureFreeSpace } from './diskSpace';
import { fetchFile } from './fetchFile';
import { hashFile } from './hashes';
import { authHeaders, listRepo, resolveUrl, type HubFile } from './hub';

export interface CheckpointProgress {
  phase: 'listing' | 'downloading' | 'verifying';
  file?: string;
  bytesDone: number;
  bytesTotal: number;
}

export interface FetchCheckpointOptions {
  endpoint: string;
  repo: string;
  revision: string;
  token?: string;
  destDir: string;
  signal?: AbortSignal;
  onProgress?: (p: CheckpointProgress) => void;
  /** Extra free space to require beyond the checkpoint itself (the converted model), given the checkpoint's bytes. */
  extraSpace?: (checkpointBytes: number) => number;
  fetch?: typeof fetch;
  maxAttempts?: number;
}

export interface FetchCheckpointResult {
  sha: string;
  files: number;
  bytes: number;
  downloaded: number;
  resumedFiles: number;
  refetchedFiles: number;
  /** SHA-256 of every file the hub gave one for (LFS files: the weights), by path. */
  sha256: Record<string, string>;
}

/** Files the converter reads: weights, configs, tokenizer. Skips docs, images, code and anything path-like that could
 * escape the destination folder. */
export function isCheckpointFile(path: string): boolean {
  if (path.startsWith('/') || path.includes('\\') || path.split('/').some((s) => s === '' || s === '..' || s.startsWith('.'))) return false;
  return /\.(safetensors|json|jinja)$/.test(path) || /(^|\/)(merges|vocab)\.txt$/.test(path);
}

const RECORD = '.verified.json';
type VerifiedRecord = Record<string, { size: number; mtimeMs: number; hex: string }>;

async function readRecord(dir: string): Promise<VerifiedRecord> {
  try {
    return JSON.parse(await readFile(join(dir, RECORD), 'utf8')) as VerifiedRecord;
  } catch {
    return {};
  }
}

async function writeRecord(dir: string, rec: VerifiedRecord): Promise<void> {
  const tmp = join(dir, `${RECORD}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(rec));
  await rename(tmp, join(dir, RECORD));
}

/** True when `dest` holds the file already: checked against the record of earlier verifications, else re-hashed. */
async function alreadyHave(dest: string, f: HubFile, rec: VerifiedRecord, signal?: AbortSignal): Promise<boolean> {
  let st;
  try {
    st = await stat(dest);
  } catch {
    return false;
  }
  if (st.size !== f.size) return false;
  const r = rec[f.path];
  if (r && r.size === st.size && r.mtimeMs === st.mtimeMs && r.hex === f.hash.hex) return true;
  return (await hashFile(dest, f.hash.algo, signal)) === f.hash.hex;
}

/**
 * Downloads a hub repo revision's checkpoint files into `destDir`: lists them with hashes, checks free space for what is
 * still missing, then fetches each file resumably and verified (see fetchFile). Files already present and verified are
 * kept, so a second call after an interruption only fetches the rest.
 */
export async function fetchCheckpoint(o: FetchCheckpointOptions): Promise<FetchCheckpointResult> {
  o.onProgress?.({ phase: 'listing', bytesDone: 0, bytesTotal: 0 });
  const repo = await listRepo({ endpoint: o.endpoint, repo: o.repo, revision: o.revision, token: o.token, signal: o.signal, fetch: o.fetch });
  const files = repo.files.filter((f) => isCheckpointFile(f.path));
  if (!files.some((f) => f.path.endsWith('.safetensors'))) throw new DiffusionVLError('download', `${o.repo}@${o.revision}: no .safetensors weights in the repository`);
  const total = files.reduce((s, f) => s + f.size, 0);
  const rec = await readRecord(o.destDir).catch(() => ({}) as VerifiedRecord);

  const missing: HubFile[] = [];
  let done = 0;
  for (const f of files) {
    o.onProgress?.({ phase: 'verifying', file: f.path, bytesDone: done, bytesTotal: total });
    if (await alreadyHave(join(o.destDir, f.path), f, rec, o.signal)) done += f.size;
    else missing.push(f);
  }
  let partial = 0;
  for (const f of missing) partial += await stat(join(o.destDir, `${f.path}.part`)).then((s) => Math.min(s.size, f.size), () => 0);
  await ensureFreeSpace(o.destDir, missing.reduce((s, f) => s + f.size, 0) - partial + (o.extraSpace?.(total) ?? 0));

  const sha256 = Object.fromEntries(files.filter((f) => f.hash.algo === 'sha256').map((f) => [f.path, f.hash.hex]));
  const result: FetchCheckpointResult = { sha: repo.sha, files: files.length, bytes: total, downloaded: 0, resumedFiles: 0, refetchedFiles: 0, sha256 };
  for (const f of missing) {
    const dest = join(o.destDir, f.path);
    await rm(dest, { force: true });
    const base = done;
    const r = await fetchFile({
      url: resolveUrl(o, repo.sha, f.path),
      dest,
      size: f.size,
      hash: f.hash,
      headers: authHeaders(o.token),
      signal: o.signal,
      fetch: o.fetch,
      maxAttempts: o.maxAttempts,
      onBytes: (n) => o.onProgress?.({ phase: 'downloading', file: f.path, bytesDone: base + n, bytesTotal: total }),
    });
    done += f.size;
    result.downloaded += r.downloaded;
    if (r.resumed) result.resumedFiles++;
    if (r.refetched) result.refetchedFiles++;
    const st = await stat(dest);
    rec[f.path] = { size: st.size, mtimeMs: st.mtimeMs, hex: f.hash.hex };
    await writeRecord(o.destDir, rec);
  }
  return result;
}
