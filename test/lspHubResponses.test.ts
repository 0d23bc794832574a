// Downloads against the responses the real Hugging Face Hub sends (replayed by test/helpers/lspHub.ts in the shapes
// huggingface_hub's file_download.py handles): each gets its outcome — resume, retry after the wait, a plain message.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fetchCheckpoint } from '../server/lsp/download/fetchCheckpoint';
import { DownloadError } from '../server/lsp/download/fetchFile';
import { HubError, listRepo } from '../server/lsp/download/hub';
import { startLocalHub, type HubFileSpec } from './helpers/lspHub';

const REPO = 'hustvl/DiffusionVL-Qwen2.5VL-3B';
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'dvl-hub-'));
  dirs.push(d);
  return d;
}

const weights: HubFileSpec = { path: 'model.safetensors', content: randomBytes(250_000), lfs: true };
const files: HubFileSpec[] = [{ path: 'config.json', content: Buffer.from('{"model_type":"diffusionvl_qwenvl"}'), lfs: false }, weights];
const get = (endpoint: string, destDir: string, token?: string) => fetchCheckpoint({ endpoint, repo: REPO, revision: 'main', destDir, token, maxAttempts: 4 });
const parts = async (d: string) => (await readdir(d)).filter((n) => n.endsWith('.part'));

test('an LFS file: 302 with X-Repo-Commit/X-Linked-Etag/X-Linked-Size to a signed URL on another host, which gets no token', async () => {
  const hub = await startLocalHub(REPO, files, { requireToken: 'hf_secret' });
  const dest = await tmp();
  try {
    const r = await get(hub.endpoint, dest, 'hf_secret');
    assert.equal(r.sha, hub.sha);
    assert.ok((await readFile(join(dest, weights.path))).equals(weights.content));
    const resolve = hub.log.filter((l) => l.host === 'hub' && l.file === weights.path);
    const cdn = hub.log.filter((l) => l.host === 'cdn');
    assert.deepEqual(resolve.map((l) => [l.status, l.authorization]), [[302, 'Bearer hf_secret']]);
    assert.deepEqual(cdn.map((l) => [l.status, l.authorization]), [[200, undefined]], 'the signed URL is fetched without the Hub token');
    // A regular file is served by the Hub itself (ETag = git blob id).
    assert.deepEqual(hub.log.filter((l) => l.file === 'config.json').map((l) => [l.host, l.status]), [['hub', 200]]);
  } finally {
    await hub.close();
  }
});

test('Range: a cut connection resumes with 206 from the CDN; a 416 discards the part and fetches the file whole', async () => {
  const hub = await startLocalHub(REPO, files, { cutAfter: new Map([[weights.path, 80_000]]), rangeGoneOnce: new Set([weights.path]) });
  const dest = await tmp();
  try {
    await get(hub.endpoint, dest);
    assert.ok((await readFile(join(dest, weights.path))).equals(weights.content));
    const cdn = hub.log.filter((l) => l.host === 'cdn').map((l) => [l.status, l.range === undefined ? 'whole' : 'range']);
    // cut (200, partial body) → Range answered 416 → whole file again (200).
    assert.deepEqual(cdn, [[200, 'whole'], [416, 'range'], [200, 'whole']]);
    assert.deepEqual(await parts(dest), []);
  } finally {
    await hub.close();
  }
  const hub2 = await startLocalHub(REPO, files, { cutAfter: new Map([[weights.path, 80_000]]) });
  const dest2 = await tmp();
  try {
    await get(hub2.endpoint, dest2);
    assert.ok((await readFile(join(dest2, weights.path))).equals(weights.content));
    assert.deepEqual(hub2.log.filter((l) => l.host === 'cdn').map((l) => l.status), [200, 206]);
  } finally {
    await hub2.close();
  }
});

test('429 and 503 with Retry-After: the listing and the file are asked again after the wait the Hub gave', async () => {
  const hub = await startLocalHub(REPO, files, { busyOnce: new Map([['api', { status: 503, retryAfter: 1 }], [weights.path, { status: 429, retryAfter: 1 }]]) });
  const dest = await tmp();
  try {
    await get(hub.endpoint, dest);
    assert.ok((await readFile(join(dest, weights.path))).equals(weights.content));
    for (const [status, pick] of [[503, (l: { file?: string; path: string }) => l.path.includes('/revision/')], [429, (l: { file?: string }) => l.file === weights.path]] as const) {
      const tries = hub.log.filter((l) => l.host === 'hub' && pick(l));
      assert.equal(tries[0].status, status);
      assert.ok(tries[1].at - tries[0].at >= 950, `waited ${tries[1].at - tries[0].at} ms after a ${status} with Retry-After: 1`);
    }
  } finally {
    await hub.close();
  }
});

test('a gated or private repository: 401 without a token, 403 with a token that has no access, in plain words', async () => {
  const hub = await startLocalHub(REPO, files, { requireToken: 'hf_right' });
  const dest = await tmp();
  try {
    await assert.rejects(get(hub.endpoint, dest), (e: HubError) => e instanceof HubError && e.status === 401 && /gated or private: accept its terms on the Hub and use an access token .*Please log in/.test(e.message));
    await assert.rejects(get(hub.endpoint, dest, 'hf_wrong'), (e: HubError) => e instanceof HubError && e.status === 403 && /no access to this repository.*not in the authorized list/.test(e.message));
    assert.deepEqual(await readdir(dest), [], 'nothing written');
    await listRepo({ endpoint: hub.endpoint, repo: REPO, revision: 'main', token: 'hf_right' });
  } finally {
    await hub.close();
  }
});

test('bytes that do not match their ETag: fetched twice, then refused; nothing left that looks finished', async () => {
  const hub = await startLocalHub(REPO, files, { corruptAlways: new Set([weights.path]) });
  const dest = await tmp();
  try {
    await assert.rejects(get(hub.endpoint, dest), (e: Error) => e instanceof DownloadError && /content does not match the hub's sha256 twice/.test(e.message));
    assert.ok(!existsSync(join(dest, weights.path)));
    assert.deepEqual(await parts(dest), []);
    assert.equal(hub.log.filter((l) => l.host === 'cdn').length, 2);
  } finally {
    await hub.close();
  }
});

test('a redirect whose X-Linked-Size/X-Linked-Etag contradict the listing is refused before a byte is fetched', async () => {
  const hub = await startLocalHub(REPO, files, { linkedMismatch: new Set([weights.path]) });
  const dest = await tmp();
  try {
    await assert.rejects(get(hub.endpoint, dest), (e: Error) => e instanceof DownloadError && /repository changed while downloading/.test(e.message));
    assert.equal(hub.log.filter((l) => l.host === 'cdn').length, 0);
  } finally {
    await hub.close();
  }
});
