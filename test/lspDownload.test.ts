import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ensureFreeSpace, freeBytes, DiskFullError } from '../server/lsp/download/diskSpace';
import { fetchCheckpoint, isCheckpointFile } from '../server/lsp/download/fetchCheckpoint';
import { fetchFile, DownloadError } from '../server/lsp/download/fetchFile';
import { listRepo } from '../server/lsp/download/hub';
import { startLocalHub, type HubFileSpec } from './helpers/lspHub';

const REPO = 'hustvl/DiffusionVL-Qwen2.5VL-3B';
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'dvl-dl-'));
  dirs.push(d);
  return d;
}

const files: HubFileSpec[] = [
  { path: 'config.json', content: Buffer.from('{"model_type":"diffusionvl_qwenvl"}'), lfs: false },
  { path: 'model-00001-of-00002.safetensors', content: randomBytes(300_000), lfs: true },
  { path: 'model-00002-of-00002.safetensors', content: randomBytes(200_000), lfs: true },
  { path: 'tokenizer.json', content: Buffer.from('{"version":"1.0"}'), lfs: false },
  { path: 'README.md', content: Buffer.from('# readme'), lfs: false },
  { path: 'sub/vision_config.json', content: Buffer.from('{}'), lfs: false },
];

test('listRepo follows tree pages and picks sha256 for LFS, git blob ids otherwise', async () => {
  const hub = await startLocalHub(REPO, files);
  try {
    const repo = await listRepo({ endpoint: hub.endpoint, repo: REPO, revision: 'main' });
    assert.equal(repo.files.length, files.length);
    assert.equal(repo.files.find((f) => f.path === 'config.json')?.hash.algo, 'git-blob-sha1');
    assert.equal(repo.files.find((f) => f.path.endsWith('1-of-00002.safetensors'))?.hash.algo, 'sha256');
    assert.ok(hub.log.filter((l) => l.path.includes('/tree/')).length >= 3, 'paginated');
  } finally {
    await hub.close();
  }
});

test('a connection cut mid-file resumes with Range; a corrupted byte is caught by the hash and refetched', async () => {
  const big = files[1];
  const hub = await startLocalHub(REPO, files, { cutAfter: new Map([[big.path, 100_000]]), corruptOnce: new Set([files[2].path, 'config.json']) });
  const dest = await tmp();
  try {
    const r = await fetchCheckpoint({ endpoint: hub.endpoint, repo: REPO, revision: 'main', destDir: dest });
    assert.equal(r.files, 5, 'README skipped');
    assert.equal(r.resumedFiles, 1);
    assert.equal(r.refetchedFiles, 2);
    for (const f of files.filter((x) => isCheckpointFile(x.path))) assert.ok((await readFile(join(dest, f.path))).equals(f.content), f.path);
    const ranged = hub.log.filter((l) => l.path.endsWith(big.path) && l.range);
    // Everything that arrived before the cut (at most the 100 000 bytes sent) is kept; one Range request fetches the rest.
    assert.equal(ranged.length, 1);
    const from = Number(/^bytes=(\d+)-$/.exec(ranged[0].range ?? '')?.[1]);
    assert.ok(from > 0 && from <= 100_000, `resumed from byte ${from}`);
    assert.ok(!existsSync(join(dest, 'README.md')));
    assert.deepEqual((await readdir(dest)).filter((n) => n.endsWith('.part')), [], 'no partial files left');

    // Second run: everything verified from the record, nothing downloaded.
    const before = hub.log.length;
    const again = await fetchCheckpoint({ endpoint: hub.endpoint, repo: REPO, revision: 'main', destDir: dest });
    assert.equal(again.downloaded, 0);
    assert.ok(hub.log.slice(before).every((l) => !l.path.includes('/resolve/')));
  } finally {
    await hub.close();
  }
});

test('a partial file from an earlier run is continued, not restarted', async () => {
  const big = files[1];
  const hub = await startLocalHub(REPO, files);
  const dest = await tmp();
  try {
    await writeFile(join(dest, `${big.path}.part`), big.content.subarray(0, 123_456));
    const r = await fetchCheckpoint({ endpoint: hub.endpoint, repo: REPO, revision: 'main', destDir: dest });
    assert.equal(r.resumedFiles, 1);
    assert.deepEqual(hub.log.filter((l) => l.range && l.host === 'cdn').map((l) => l.range), ['bytes=123456-']);
    assert.ok((await readFile(join(dest, big.path))).equals(big.content));
  } finally {
    await hub.close();
  }
});

test('a file that is wrong twice fails without leaving it in place', async () => {
  const f = files[2];
  const hub = await startLocalHub(REPO, files);
  const dest = await tmp();
  try {
    const url = `${hub.endpoint}/${REPO}/resolve/${'c0ffee' + '0'.repeat(34)}/${f.path}`;
    await assert.rejects(fetchFile({ url, dest: join(dest, 'x'), size: f.content.length, hash: { algo: 'sha256', hex: '0'.repeat(64) } }), DownloadError);
    assert.ok(!existsSync(join(dest, 'x')));
    assert.ok(!existsSync(join(dest, 'x.part')));
  } finally {
    await hub.close();
  }
});

test('free space is checked with statfs before downloading', async () => {
  const d = await tmp();
  assert.ok((await freeBytes(d)) > 0);
  await assert.rejects(ensureFreeSpace(d, Number.MAX_SAFE_INTEGER / 2), DiskFullError);
  const hub = await startLocalHub(REPO, files);
  try {
    await assert.rejects(
      fetchCheckpoint({ endpoint: hub.endpoint, repo: REPO, revision: 'main', destDir: d, extraSpace: () => Number.MAX_SAFE_INTEGER / 2 }),
      DiskFullError,
    );
    assert.ok(hub.log.every((l) => !l.path.includes('/resolve/')), 'nothing fetched');
  } finally {
    await hub.close();
  }
});

test('checkpoint file filter keeps weights/configs and rejects path tricks', () => {
  assert.ok(isCheckpointFile('model.safetensors'));
  assert.ok(isCheckpointFile('merges.txt'));
  assert.ok(!isCheckpointFile('README.md'));
  assert.ok(!isCheckpointFile('../evil.json'));
  assert.ok(!isCheckpointFile('/abs.json'));
  assert.ok(!isCheckpointFile('.cache/x.json'));
});
