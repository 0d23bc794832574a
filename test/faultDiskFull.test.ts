// The disk filling up for real, on small tmpfs mounts: during a download (after the free-space check passed, as
// when another program fills the disk) and during a conversion. The outcome: a `diskFull` error that says so, and
// nothing half-written left under a finished name.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { errorKind } from '../server/engine/errors';
import { runConversion } from '../server/lsp/convertRunner';
import { fetchCheckpoint } from '../server/lsp/download/fetchCheckpoint';
import { writeGoldenTinyCheckpoint } from './helpers/checkpoint/tinyCheckpoint';
import { startLocalHub, type HubFileSpec } from './helpers/lspHub';
import { repoRoot } from './helpers/paths';

const work = mkdtempSync(join(tmpdir(), 'dvl-diskfull-'));
const mounts: string[] = [];

function mountTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  mounts.push(dir);
}

/** Why these tests cannot run here, or false: they mount tmpfs, which needs Linux and root (or CAP_SYS_ADMIN). */
const skip = ((): string | false => {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux';
  const probe = join(work, 'probe');
  try {
    execFileSync('mkdir', ['-p', probe]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return false;
  } catch (err) {
    return `mounting a tmpfs is not permitted here (${(err as Error).message.split('\n')[0]}); run as root to inject a full disk`;
  }
})();

after(() => {
  for (const m of mounts.reverse()) {
    try {
      execFileSync('umount', [m], { stdio: 'pipe' });
    } catch {
      // already gone
    }
  }
  rmSync(work, { recursive: true, force: true });
});

/** Writes until the volume is full (ENOSPC), like another program filling the disk. */
async function fillUp(dir: string): Promise<string> {
  const path = join(dir, 'filler.bin');
  const fh = await open(path, 'w');
  const block = Buffer.alloc(256 * 1024, 7);
  try {
    for (;;) await fh.write(block);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    await fh.close();
  }
  return path;
}

test('disk full during a download: a diskFull error, only the resumable .part left, and the next run resumes it', { skip }, async () => {
  const REPO = 'hustvl/DiffusionVL-Qwen2.5VL-3B';
  const weights: HubFileSpec = { path: 'model.safetensors', content: randomBytes(4 << 20), lfs: true };
  const files: HubFileSpec[] = [{ path: 'config.json', content: Buffer.from('{"model_type":"diffusionvl_qwenvl"}'), lfs: false }, weights];
  const disk = join(work, 'dl');
  execFileSync('mkdir', ['-p', disk]);
  // Room for the up-front check (the file plus its 64 MiB margin), so the disk fills only while writing.
  mountTmpfs(disk, 72 << 20);
  const dest = join(disk, 'ckpt');
  const hub = await startLocalHub(REPO, files, { holdAfter: new Map([[weights.path, 1 << 20]]) });
  try {
    const run = fetchCheckpoint({ endpoint: hub.endpoint, repo: REPO, revision: 'main', destDir: dest, maxAttempts: 2 });
    const failed = run.then(
      () => assert.fail('the download succeeded on a full disk'),
      (e: unknown) => e,
    );
    await hub.held(weights.path);
    const part = join(dest, `${weights.path}.part`);
    for (let i = 0; i < 500 && (!existsSync(part) || (await stat(part)).size === 0); i++) await new Promise((r) => setTimeout(r, 10));
    const filler = await fillUp(disk);
    hub.release(weights.path);
    const err = (await failed) as Error;
    assert.equal(errorKind(err), 'diskFull', err.message);
    assert.match(err.message, /the disk filled up while downloading/);
    assert.ok(!existsSync(join(dest, weights.path)), 'no file under its finished name');
    const kept = await readFile(part);
    assert.ok(kept.length > 0 && kept.length < weights.content.length);
    assert.ok(weights.content.subarray(0, kept.length).equals(kept), 'the part is a prefix of the file');
    const record = existsSync(join(dest, '.verified.json')) ? JSON.parse(await readFile(join(dest, '.verified.json'), 'utf8')) : {};
    assert.equal(record[weights.path], undefined, 'not recorded as verified');

    await rm(filler);
    const again = await fetchCheckpoint({ endpoint: hub.endpoint, repo: REPO, revision: 'main', destDir: dest });
    assert.equal(again.resumedFiles, 1);
    assert.ok((await readFile(join(dest, weights.path))).equals(weights.content));
    const ranged = hub.log.filter((l) => l.host === 'cdn' && l.range);
    assert.equal(ranged.length, 1);
    assert.equal(ranged[0].range, `bytes=${kept.length}-`);
  } finally {
    await hub.close();
  }
});

/** The tiny checkpoint, and a 2 MiB tmpfs too small for its conversion (into `<disk>/model`). */
async function checkpointAndSmallDisk(ckptName: string, diskName: string): Promise<{ ckpt: string; disk: string; outDir: string }> {
  const ckpt = join(work, ckptName);
  await writeGoldenTinyCheckpoint(ckpt);
  const disk = join(work, diskName);
  execFileSync('mkdir', ['-p', disk]);
  mountTmpfs(disk, 2 << 20);
  return { ckpt, disk, outDir: join(disk, 'model') };
}

test('disk full during a conversion: a diskFull error, and neither the model nor its .partial folder is left', { skip }, async () => {
  const { ckpt, disk, outDir } = await checkpointAndSmallDisk('ckpt', 'conv');
  await assert.rejects(runConversion({ checkpointDir: ckpt, outDir, precision: 'fp32' }, () => {}, new AbortController().signal), (e: Error) => {
    assert.equal(errorKind(e), 'diskFull', e.message);
    assert.match(e.message, /the disk filled up while converting/);
    return true;
  });
  assert.deepEqual(await readdir(disk), [], 'nothing left behind');
});

test('disk full during `diffusionvl convert`: the CLI says so in the same words, exits 1, and leaves nothing', { skip }, async () => {
  const { ckpt, disk, outDir } = await checkpointAndSmallDisk('ckpt-cli', 'conv-cli');
  const run = spawnSync(process.execPath, [join(repoRoot, 'bin', 'diffusionvl.js'), 'convert', ckpt, outDir, '--quiet'], { encoding: 'utf8' });
  assert.equal(run.status, 1, run.stderr);
  assert.equal(run.stderr, `diffusionvl: the disk filled up while converting; nothing of the new model was kept (${outDir}.partial): free some space and try again\n`);
  assert.deepEqual(await readdir(disk), [], 'nothing left behind');
});
