import { readdir, readFile, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { WorkDoneProgressReporter } from 'vscode-languageserver/node';
import { CancelledError, type ExecutionProvider } from '../engine/api';
import { DiffusionVLError, errorKind } from '../engine/errors';
import { DECODER_KINDS, MANIFEST_FILE, manifestDecoders, type ModelManifest } from '../engine/manifest';
import { decoderPrecision } from '../converter/convertOptions';
import {
  DEFAULT_ENDPOINT,
  DEFAULT_REPO,
  Methods,
  type DecoderKind,
  type DownloadStatus,
  type GgufType,
  type PrepareModelParams,
  type PrepareModelResult,
  type Precision,
} from '../protocol';
import { fastestDecoder } from './decoderChoice';
import type { ServerContext } from './context';
import { ensureFreeSpace } from './download/diskSpace';
import { fetchCheckpoint } from './download/fetchCheckpoint';
import { message, RequestError } from './errors';
import { onRequest } from './handlers';
import { runConversion } from './convertRunner';


/** Converted-size estimate relative to a bf16 checkpoint, for the free-space check: ONNX precisions, and GGUF types
 * (the quantised ones pass through an F16 file, removed afterwards). */
const SIZE_FACTOR: Record<Precision, number> = { fp32: 2.1, fp16: 1.1, int4: 0.6 };
const GGUF_SIZE_FACTOR: Record<GgufType, number> = { fp32: 2.1, fp16: 1.1, q8_0: 1.7, q4_0: 1.4, q4_k_m: 1.4 };

function sizeFactor(p: Target): number {
  if (!p.ggufType) return SIZE_FACTOR[p.precision];
  return GGUF_SIZE_FACTOR[p.ggufType] + (p.decoder === 'both' ? SIZE_FACTOR[p.precision] : 0.1);
}

function slug(repo: string): string {
  return repo.replace(/[^\w.-]+/g, '--');
}

/** What the conversion writes: the decoder, the ONNX precision, the GGUF type, and the `precision` asked for. */
interface Target {
  decoder: DecoderKind;
  /** As given (an ONNX precision or a GGUF type): names the model folder. */
  asked: string;
  precision: Precision;
  ggufType?: GgufType;
}

interface Checked extends Target {
  storageDir: string;
  repo: string;
  revision: string;
  endpoint: string;
  localCheckpoint?: string;
  /** Why this decoder: the machine's fastest (no decoder or precision given) or as asked. */
  reason: string;
}

/** The decoder and precision asked for, else the fastest for this machine. */
function target(p: PrepareModelParams, provider: ExecutionProvider, log: (line: string) => void): Target & { reason: string } {
  if (p.decoder !== undefined && !DECODER_KINDS.includes(p.decoder)) throw new RequestError('params', `decoder must be one of ${DECODER_KINDS.join(', ')}`);
  const auto = p.decoder === undefined && p.precision === undefined ? fastestDecoder(provider, log) : undefined;
  const decoder = auto?.decoder ?? p.decoder ?? 'onnx';
  const asked = auto?.precision ?? p.precision ?? (decoder === 'onnx' ? 'fp16' : 'q4_k_m');
  let resolved: ReturnType<typeof decoderPrecision>;
  try {
    resolved = decoderPrecision(decoder, asked);
  } catch (err) {
    throw new RequestError('params', (err as Error).message.replace(/--(\w+)/g, '$1'));
  }
  return { decoder, asked, ...resolved, reason: auto?.reason ?? `${decoder} ${asked} as asked` };
}

function check(p: PrepareModelParams, provider: ExecutionProvider, log: (line: string) => void): Checked {
  if (typeof p !== 'object' || p === null) throw new RequestError('params', 'params must be an object');
  if (typeof p.storageDir !== 'string' || !isAbsolute(p.storageDir)) throw new RequestError('params', 'storageDir must be an absolute path');
  const repo = p.repo ?? DEFAULT_REPO;
  if (typeof repo !== 'string' || !/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new RequestError('params', 'repo must look like "owner/name"');
  const endpoint = p.endpoint ?? DEFAULT_ENDPOINT;
  if (typeof endpoint !== 'string' || !/^https?:\/\/[^\s]+$/.test(endpoint)) throw new RequestError('params', 'endpoint must be an http(s) URL');
  if (p.localCheckpoint !== undefined && (typeof p.localCheckpoint !== 'string' || !isAbsolute(p.localCheckpoint))) {
    throw new RequestError('params', 'localCheckpoint must be an absolute path');
  }
  const revision = p.revision ?? 'main';
  if (typeof revision !== 'string' || revision === '' || revision.includes('..')) throw new RequestError('params', 'revision must be a branch, tag or commit');
  return { storageDir: p.storageDir, repo, revision, endpoint, localCheckpoint: p.localCheckpoint, ...target(p, provider, log) };
}

async function weightFiles(dir: string): Promise<{ name: string; bytes: number }[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.safetensors'));
  return Promise.all(names.map(async (name) => ({ name, bytes: (await stat(join(dir, name))).size })));
}

/** Whether `modelDir` already holds this checkpoint converted at this precision (names, sizes and, when the hub gave
 * them, SHA-256 of every weight file match the manifest's record of its sources). */
async function upToDate(modelDir: string, checkpointDir: string, t: Target, hubSha: Record<string, string>): Promise<boolean> {
  let m: ModelManifest;
  try {
    m = JSON.parse(await readFile(join(modelDir, MANIFEST_FILE), 'utf8')) as ModelManifest;
  } catch {
    return false;
  }
  if (m.precision !== t.precision || !Array.isArray(m.source?.files) || !m.files) return false;
  const d = manifestDecoders(m);
  if ((t.decoder !== 'gguf') !== !!d.onnx || (t.ggufType ?? null) !== (d.gguf?.type ?? null)) return false;
  const weights = await weightFiles(checkpointDir);
  return weights.length > 0 && weights.every((w) => {
    const src = m.source.files.find((f) => f.name === w.name);
    const sha = hubSha[w.name];
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

type Report = (pct: number, msg: string, force?: boolean) => void;
type SetStatus = (s: Partial<DownloadStatus>) => void;

/** Where the checkpoint and the converted model go, and the counters the result reports. */
function plan(p: Checked): PrepareModelResult {
  return {
    // ONNX folders keep their old names (`<repo>-<precision>`), so models converted before GGUF are found again.
    modelDir: join(p.storageDir, 'models', `${slug(p.localCheckpoint ? `local-${slug(p.localCheckpoint)}` : p.repo)}-${p.decoder === 'onnx' ? '' : `${p.decoder}-`}${p.asked}`),
    checkpointDir: p.localCheckpoint ?? join(p.storageDir, 'checkpoints', slug(p.repo)),
    files: 0,
    downloadedBytes: 0,
    resumedFiles: 0,
    refetchedFiles: 0,
    converted: false,
  };
}

/** Work-done progress: the client's token, else one the server creates when the client supports it, else none. */
async function openProgress(ctx: ServerContext, raw: PrepareModelParams, abort: AbortController): Promise<WorkDoneProgressReporter> {
  if (raw.workDoneToken !== undefined) return ctx.connection.window.attachWorkDoneProgress(raw.workDoneToken);
  if (!ctx.client.workDoneProgress) return ctx.connection.window.attachWorkDoneProgress(undefined);
  const server = await ctx.connection.window.createWorkDoneProgress();
  server.token.onCancellationRequested(() => abort.abort());
  return server;
}

/** Step 1 (download): fetches the checkpoint; returns the hub's SHA-256 of each weight file. Failures without a kind of
 * their own are download errors. */
async function download(p: Checked, raw: PrepareModelParams, result: PrepareModelResult, signal: AbortSignal, setStatus: SetStatus, report: Report): Promise<Record<string, string>> {
  try {
    const r = await fetchCheckpoint({
      endpoint: p.endpoint,
      repo: p.repo,
      revision: p.revision,
      token: raw.hfToken,
      destDir: result.checkpointDir,
      signal,
      extraSpace: (bytes) => bytes * sizeFactor(p),
      onProgress: (e) => {
        setStatus({ phase: e.phase, file: e.file, bytesDone: e.bytesDone, bytesTotal: e.bytesTotal });
        const pct = e.bytesTotal > 0 ? (80 * e.bytesDone) / e.bytesTotal : 0;
        report(pct, e.file ? `${e.phase} ${e.file} (${mib(e.bytesDone)} of ${mib(e.bytesTotal)})` : e.phase);
      },
    });
    Object.assign(result, { files: r.files, downloadedBytes: r.downloaded, resumedFiles: r.resumedFiles, refetchedFiles: r.refetchedFiles });
    return r.sha256;
  } catch (err) {
    if (signal.aborted) throw new CancelledError();
    throw errorKind(err) ? err : new DiffusionVLError('download', `download of ${p.repo} failed: ${message(err)}`);
  }
}

/** Step 1 (local): checks the local checkpoint folder and the free space its conversion needs. */
async function useLocal(dir: string, p: Checked, result: PrepareModelResult): Promise<void> {
  const weights = await weightFiles(dir).catch((err: unknown) => {
    throw new RequestError('params', `${dir}: cannot read the checkpoint folder (${message(err)})`);
  });
  if (weights.length === 0) throw new RequestError('params', `${dir}: no .safetensors files; not a checkpoint folder`);
  result.files = weights.length;
  await ensureFreeSpace(p.storageDir, weights.reduce((s, w) => s + w.bytes, 0) * sizeFactor(p));
}

/** Step 2: converts unless an up-to-date converted model is already there. */
async function convertIfNeeded(p: Checked, result: PrepareModelResult, hubSha: Record<string, string>, signal: AbortSignal, setStatus: SetStatus, report: Report): Promise<void> {
  if (await upToDate(result.modelDir, result.checkpointDir, p, hubSha)) return;
  setStatus({ phase: 'converting', file: undefined, bytesDone: 0, bytesTotal: 0 });
  report(80, 'converting', true);
  await runConversion(
    { checkpointDir: result.checkpointDir, outDir: result.modelDir, precision: p.precision, decoder: p.decoder, ggufType: p.ggufType },
    (c) => {
      setStatus({ bytesDone: c.done, bytesTotal: c.total });
      report(80 + (20 * c.done) / Math.max(1, c.total), `converting: ${c.stage}${c.tensor ? ` ${c.tensor}` : ''}`);
    },
    signal,
  );
  result.converted = true;
}

export function registerPrepareModel(ctx: ServerContext): void {
  let running = false;

  onRequest(ctx.connection, Methods.prepareModel, async (raw, token) => {
    const p = check(raw, ctx.settings.executionProvider, (line) => ctx.log(line, 'warning'));
    if (running) throw new RequestError('queueFull', 'a model is already being prepared; wait for it or cancel it first');
    running = true;
    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    const progress = await openProgress(ctx, raw, abort);
    progress.begin(`DiffusionVL: preparing ${p.localCheckpoint ?? p.repo}`, 0, 'starting', true);
    const report = reporter(progress);
    const status: DownloadStatus = { repo: p.localCheckpoint ?? p.repo, phase: 'listing', bytesDone: 0, bytesTotal: 0 };
    ctx.download = status;
    ctx.statusChanged();
    const setStatus: SetStatus = (s) => {
      Object.assign(status, s);
      ctx.statusChanged();
    };
    try {
      const result = plan(p);
      ctx.log(`preparing ${p.localCheckpoint ?? p.repo}: ${p.reason}`);
      const hubSha = p.localCheckpoint ? (await useLocal(p.localCheckpoint, p, result), {}) : await download(p, raw, result, abort.signal, setStatus, report);
      await convertIfNeeded(p, result, hubSha, abort.signal, setStatus, report);
      setStatus({ phase: 'done', file: undefined });
      if (raw.activate !== false) ctx.updateSettings({ modelPath: result.modelDir }, 'prepareModel');
      ctx.log(`model ready at ${result.modelDir}${result.converted ? ' (converted)' : ' (already converted)'}`);
      return result;
    } catch (err) {
      setStatus({ phase: 'failed' });
      throw abort.signal.aborted ? new CancelledError() : err;
    } finally {
      running = false;
      sub.dispose();
      progress.done();
    }
  });
}
