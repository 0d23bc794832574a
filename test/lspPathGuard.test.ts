import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { WorkspaceGuard, isInside } from '../server/lsp/pathGuard';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

test('isInside is lexical and rejects siblings with a common prefix', () => {
  assert.ok(isInside('/ws', '/ws/a/b.png'));
  assert.ok(isInside('/ws', '/ws'));
  assert.ok(!isInside('/ws', '/ws2/a.png'));
  // `..` segments that climb out of the folder are outside, however they are spelled.
  assert.ok(!isInside('/ws', '/ws/../etc/passwd'));
  assert.ok(!isInside('/ws', '/ws/a/../../etc/passwd'));
  assert.ok(!isInside('/ws', '/ws/..'));
  assert.ok(isInside('/ws', '/ws/a/../b.png'), 'a `..` that stays inside is fine');
  assert.ok(!isInside('/ws/a', '/ws'));
});

test('guard allows workspace files, rejects outside paths, relative paths and symlinks that escape', async () => {
  const root = await mkdtemp(join(tmpdir(), 'dvl-guard-'));
  const outside = await mkdtemp(join(tmpdir(), 'dvl-out-'));
  dirs.push(root, outside);
  await mkdir(join(root, 'img'));
  await writeFile(join(root, 'img', 'a.png'), 'x');
  await writeFile(join(outside, 'secret.png'), 'x');
  await symlink(join(outside, 'secret.png'), join(root, 'img', 'link.png'));
  const g = new WorkspaceGuard();
  g.setRoots([root]);
  assert.ok(await g.check(join(root, 'img', 'a.png')));
  assert.equal(await g.check(join(outside, 'secret.png')), undefined);
  assert.equal(await g.check(join(root, 'img', '..', '..', outside.split('/').pop()!, 'secret.png')), undefined);
  assert.equal(await g.check(join(root, 'img', 'link.png')), undefined);
  assert.equal(await g.check('img/a.png'), undefined);
  assert.equal(g.folderOf(join(root, 'img', 'a.png')), root);

  const open = new WorkspaceGuard();
  assert.ok(await open.check(join(outside, 'secret.png')), 'no workspace folders: absolute paths allowed');
});
