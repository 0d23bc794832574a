import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CancelledError } from '../server/engine/api';
import { InferenceQueue, QueueFullError } from '../server/lsp/queue';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test('one task at a time; interactive waiters go before hovers, FIFO within a lane', async () => {
  const q = new InferenceQueue();
  const order: string[] = [];
  const gate = deferred();
  const first = q.run('interactive', undefined, async () => {
    order.push('first');
    await gate.promise;
  });
  const h1 = q.run('hover', undefined, async () => void order.push('h1'));
  const i1 = q.run('interactive', undefined, async () => void order.push('i1'));
  const h2 = q.run('hover', undefined, async () => void order.push('h2'));
  const i2 = q.run('interactive', undefined, async () => void order.push('i2'));
  assert.deepEqual(q.stats().waitingInteractive, 2);
  assert.deepEqual(q.stats().waitingHover, 2);
  gate.resolve();
  await Promise.all([first, h1, i1, h2, i2]);
  assert.deepEqual(order, ['first', 'i1', 'i2', 'h1', 'h2']);
  assert.equal(q.stats().completed, 5);
  assert.ok(q.idle);
});

test('a waiter cancelled before it starts leaves the queue and never runs', async () => {
  const q = new InferenceQueue();
  const gate = deferred();
  const running = q.run('interactive', undefined, () => gate.promise);
  const ac = new AbortController();
  let ran = false;
  const waiting = q.run('interactive', ac.signal, async () => void (ran = true));
  ac.abort();
  await assert.rejects(waiting, CancelledError);
  gate.resolve();
  await running;
  assert.equal(ran, false);
  assert.equal(q.stats().cancelled, 1);
  await assert.rejects(q.run('hover', AbortSignal.abort(), async () => 1), CancelledError);
});

test('bounded: beyond maxWaiting requests fail fast; failures do not stall the queue', async () => {
  const q = new InferenceQueue(2);
  const gate = deferred();
  const running = q.run('interactive', undefined, () => gate.promise);
  const a = q.run('interactive', undefined, async () => {
    throw new Error('boom');
  });
  const b = q.run('interactive', undefined, async () => 'b');
  await assert.rejects(q.run('interactive', undefined, async () => 'c'), QueueFullError);
  gate.resolve();
  await running;
  await assert.rejects(a, /boom/);
  assert.equal(await b, 'b');
  assert.equal(q.stats().failed, 1);
});
