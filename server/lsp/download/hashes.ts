import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

/** What the hub says a file hashes to: LFS files carry their SHA-256, small files their git blob id. */
export interface ExpectedHash {
  algo: 'sha256' | 'git-blob-sha1';
  hex: string;
}

/** SHA-256 of the file, or git's blob id: sha1("blob <size>\0" + content). Streams, so multi-GB files are fine. */
export async function hashFile(path: string, algo: ExpectedHash['algo'], signal?: AbortSignal): Promise<string> {
  const hash = createHash(algo === 'sha256' ? 'sha256' : 'sha1');
  if (algo === 'git-blob-sha1') hash.update(`blob ${(await stat(path)).size}\0`);
  for await (const chunk of createReadStream(path, { signal, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
