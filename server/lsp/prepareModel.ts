import { readdir, readFile, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { CancellationToken, WorkDoneProgressReporter } from 'vscode-languageserver/node';
import { CancelledError } from '../engine/api';
import { MANIFEST_FILE, type ModelManifest } from '../engine/manifest';
import {
  DEFAULT_ENDPOINT,
  DEFAULT_REPO,
  Methods,
  type DownloadStatus,
  type PrepareModelParams,
  type PrepareModelResult,
  type Precision,
} from '../protocol';
import type { ServerContext } from './context';
import { DiskFullError, ensureFreeSpace } from './download/diskSpace';
import { fetchCheckpoint } from './download/fetchCheckpoint';
import { DownloadError } from './download/fetchFile';
import { HubError } from './download/hub';
import { cancelled, message, rpcError } from './errors';
import { runConversion } from './convertRunner';

const PRECISIONS = new Set<Precision>(['fp32', 'fp16', 'int4']);

/** Converted-size estimate relative to a bf16 checkpoint, for the free-space check. */
const SIZE_FACTOR: Record<Precision, number> = { fp32: 2.1, fp16: 1.1, int4: 0.6 };

function slug(repo: string): string {
  return repo.replace(/[^\w.-]+/g, '--');
}

interface Checked {
  storageDir: string;
  repo: string;
  revision: string;
  endpoint: string;
  precision: Precision;
  localCheckpoint?: string;
}

function check(p: PrepareModelParams): Checked {
  if (typeof p !== 'object' || p === null) throw rpcError('InvalidParams', 'params must be an object');
  if (typeof p.storageDir !== 'string' || !isAbsolute(p.storageDir)) throw rpcError('InvalidParams', 'storageDir must be an absolute path');
  const repo = p.repo ?? DEFAULT_REPO;
  if (typeof repo !== 'string' || !/^[\w.-]+\/[\w.-]+$/.test(repo)) throw rpcError('InvalidParams', 'repo must look like "owner/name"');
  const endpoint = p.endpoint ?? DEFAULT_ENDPOINT;
  if (typeof endpoint !== 'string' || !/^https?:\/\/[^\s]+$/.test(endpoint)) throw rpcError('InvalidParams', 'endpoint must be an http(s) URL');
  const precision = p.precision ?? 'fp16';
  if (!PRECISIONS.has(precision)) throw rpcError('InvalidParams', 'precision must be fp32, fp16 or int4');
  if (p.localCheckpoint !== undefined && (typeof p.localCheckpoint !== 'string' || !isAbsolute(p.localCheckpoint))) {
    throw rpcError('InvalidParams', 'localCheckpoint must be an absolute path');
  }
  const revision = p.revision ?? 'main';
  if (typeof revision !== 'string' || revision === '' || revision.includes('..')) throw rpcError('InvalidParams', 'revision must be a branch, tag or commit');
  return { storageDir: p.storageDir, repo, revision, endpoint, precision, localCheckpoint: p.localCheckpoint };
}

async function weightFiles(dir: string): Promise<{ name: string; bytes: number }[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.safetensors'));
  return Promise.all(names.map(async (name) => ({ name, bytes: (await stat(join(dir, name))).size })));
}

/** Whether `modelDir` already holds this checkpoint converted at this precision (names, sizes and, when the hub gave
 * them, SHA-256 of every weight file match the manifest's record of its sources). */
async function upToDate(modelDir: string, checkpointDir: string, precision: Precision, hubSha: Map<string, string>): Promise<boolean> {
  let m: ModelManifest;
  try {
    m = JSON.parse(await readFile(join(modelDir, MANIFEST_FILE), 'utf8')) as ModelManifest;
  } catch {
    return false;
  }
  if (m.precision !== precision || !Array.isArray(m.source?.files)) return false;
  const weights = await weightFiles(checkpointDir);
  return weights.length > 0 && weights.every((w) => {
    const src = m.source.files.find((f) => f.name === w.name);
    const sha = hubSha.get(w.name);
    return src !== undefined && src.bytes === w.bytes && (sha === undefined || src.sha256 === sha);
  });
}

/** Work-done progress with a percentage, reported at most every 250 ms. */
function reporter(progress: WorkDoneProgressReporter): (pct: number, msg: string, force?: boolean) => void {
  let last = 0;
  return (pct, msg, force) => {
    const now = Date.now();
    if (!force && now - last < 250) return;
    last = now;
    progress.report(Math.max(0, Math.min(100, Math.round(pct))), msg);
  };
}

function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function registerPrepareModel(ctx: ServerContext): void {
  let running = false;

  ctx.connection.onRequest(Methods.prepareModel, async (raw: PrepareModelParams, token: CancellationToken): Promise<PrepareModelResult> => {
    const p = check(raw);
    if (running) throw rpcError('QueueFull', 'a model is already being prepared; wait for it or cancel it first');
    running = true;
    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    let progress: WorkDoneProgressReporter;
    if (raw.workDoneToken !== undefined) progress = ctx.connection.window.attachWorkDoneProgress(raw.workDoneToken);
    else if (ctx.client.workDoneProgress) {
      const server = await ctx.connection.window.createWorkDoneProgress();
      server.token.onCancellationRequested(() => abort.abort());
      progress = server;
    } else progress = ctx.connection.window.attachWorkDoneProgress(undefined);
    progress.begin(`DiffusionVL: preparing ${p.localCheckpoint ?? p.repo}`, 0, 'starting', true);
    const report = reporter(progress);
    const status: DownloadStatus = { repo: p.localCheckpoint ?? p.repo, phase: 'listing', bytesDone: 0, bytesTotal: 0 };
    ctx.download = status;
    ctx.statusChanged();
    const setStatus = (s: Partial<DownloadStatus>): void => {
      Object.assign(status, s);
      ctx.statusChanged();
    };
    try {
      const result: PrepareModelResult = {
        modelDir: join(p.storageDir, 'models', `${slug(p.localCheckpoint ? `local-${slug(p.localCheckpoint)}` : p.repo)}-${p.precision}`),
        checkpointDir: p.localCheckpoint ?? join(p.storageDir, 'checkpoints', slug(p.repo)),
        files: 0,
        downloadedBytes: 0,
        resumedFiles: 0,
        refetchedFiles: 0,
        converted: false,
      };
      const hubSha = new Map<string, string>();
      if (!p.localCheckpoint) {
        const r = await fetchCheckpoint({
          endpoint: p.endpoint,
          repo: p.repo,
          revision: p.revision,
          token: raw.hfToken,
          destDir: result.checkpointDir,
          signal: abort.signal,
          extraSpace: (bytes) => bytes * SIZE_FACTOR[p.precision],
          onProgress: (e) => {
            setStatus({ phase: e.phase === 'listing' ? 'listing' : e.phase === 'verifying' ? 'verifying' : 'downloading', file: e.file, bytesDone: e.bytesDone, bytesTotal: e.bytesTotal });
            const pct = e.bytesTotal > 0 ? (80 * e.bytesDone) / e.bytesTotal : 0;
            report(pct, e.file ? `${e.phase} ${e.file} (${mib(e.bytesDone)} of ${mib(e.bytesTotal)})` : e.phase);
          },
        });
        Object.assign(result, { files: r.files, downloadedBytes: r.downloaded, resumedFiles: r.resumedFiles, refetchedFiles: r.refetchedFiles });
        // Hub hashes of weight files let the up-to-date check skip re-hashing gigabytes.
        const weights = await weightFiles(result.checkpointDir);
        for (const w of weights) {
          const rec = JSON.parse(await readFile(join(result.checkpointDir, '.verified.json'), 'utf8').catch(() => '{}')) as Record<string, { hex: string }>;
          if (rec[w.name]) hubSha.set(w.name, rec[w.name].hex);
        }
      } else {
        const weights = await weightFiles(p.localCheckpoint).catch((err: unknown) => {
          throw rpcError('InvalidParams', `${p.localCheckpoint}: cannot read the checkpoint folder (${message(err)})`);
        });
        if (weights.length === 0) throw rpcError('InvalidParams', `${p.localCheckpoint}: no .safetensors files; not a checkpoint folder`);
        result.files = weights.length;
        await ensureFreeSpace(p.storageDir, weights.reduce((s, w) => s + w.bytes, 0) * SIZE_FACTOR[p.precision]);
      }

      if (!(await upToDate(result.modelDir, result.checkpointDir, p.precision, hubSha))) {
        setStatus({ phase: 'converting', file: undefined, bytesDone: 0, bytesTotal: 0 });
        report(80, 'converting', true);
        await runConversion(
          { checkpointDir: result.checkpointDir, outDir: result.modelDir, precision: p.precision },
          (c) => {
            setStatus({ bytesDone: c.done, bytesTotal: c.total });
            report(80 + (20 * c.done) / Math.max(1, c.total), `converting: ${c.stage}${c.tensor ? ` ${c.tensor}` : ''}`);
          },
          abort.signal,
        );
        result.converted = true;
      }
      setStatus({ phase: 'done', file: undefined });
      if (raw.activate !== false) {
        ctx.settings = { ...ctx.settings, modelDir: result.modelDir };
        ctx.models.configure(ctx.settings);
      }
      ctx.log(`model ready at ${result.modelDir}${result.converted ? ' (converted)' : ' (already converted)'}`);
      return result;
    } catch (err) {
      setStatus({ phase: 'failed' });
      if (abort.signal.aborted || err instanceof CancelledError) throw cancelled();
      if (err instanceof DiskFullError) throw rpcError('DiskFull', err.message);
      if (err instanceof DownloadError || err instanceof HubError) throw rpcError('DownloadFailed', err.message);
      // A checkpoint whose configuration the converter cannot run (another model family, an unsupported option).
      if (err instanceof Error && /is not supported|unknown model_type|unknown architectures/i.test(err.message)) throw rpcError('UnsupportedModel', err.message);
      if (err instanceof Error && !('code' in err && typeof err.code === 'number')) throw rpcError('DownloadFailed', err.message);
      throw err;
    } finally {
      running = false;
      sub.dispose();
      progress.done();
    }
  });
}
