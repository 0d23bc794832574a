import { strict as assert } from 'node:assert';

/** Asserts that `p` rejects with a message containing every string part and matching every pattern. */
export async function rejects(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    for (const part of parts) {
      if (typeof part === 'string') assert.ok(err.message.includes(part), `"${err.message}" should mention "${part}"`);
      else assert.match(err.message, part);
    }
    return true;
  });
}
