import { createHash } from 'node:crypto';

/**
 * Identity of each full prompt block, for reusing a previous prompt's K/V. With a block-causal prefill a full block's
 * K/V depend only on the blocks before it, so two prompts that agree on their first k blocks (same ids and the same
 * images at the same places) share those blocks' K/V exactly. Each digest chains the previous one.
 */
export function prefixBlockDigests(
  promptIds: number[],
  imagePlaceholder: number,
  imageKeys: string[],
  imageTokenCounts: number[],
  blockSize: number,
  fullBlocks: number,
): string[] {
  // Expand to one identity per prompt position: a text id, or (image key, token index).
  const rows: string[] = [];
  let img = 0;
  for (const id of promptIds) {
    if (id === imagePlaceholder) {
      for (let t = 0; t < imageTokenCounts[img]; t++) rows.push(`i:${imageKeys[img]}:${t}`);
      img++;
    } else rows.push(`t:${id}`);
  }
  const digests: string[] = [];
  let prev = `block${blockSize}`;
  for (let b = 0; b < fullBlocks; b++) {
    prev = createHash('sha256').update(prev).update(rows.slice(b * blockSize, (b + 1) * blockSize).join(',')).digest('hex');
    digests.push(prev);
  }
  return digests;
}

/** Number of leading entries two digest lists share. */
export function sharedPrefix(a: string[], b: string[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}
