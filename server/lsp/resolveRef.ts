import { stat } from 'node:fs/promises';
import { candidatePaths, type ImageRef } from './imageRefs';
import { uriToPath, type WorkspaceGuard } from './pathGuard';

/** The allowed, existing file a reference in document `uri` points at, or undefined (missing, remote, outside). */
export async function resolveRefPath(ref: ImageRef, uri: string, guard: WorkspaceGuard): Promise<string | undefined> {
  const docPath = uriToPath(uri);
  if (!docPath) return undefined;
  for (const candidate of candidatePaths(ref.target, docPath, guard.folderOf(docPath))) {
    const real = await guard.check(candidate);
    if (!real) continue;
    try {
      if ((await stat(real)).isFile()) return real;
    } catch {
      // Try the next reading of the path.
    }
  }
  return undefined;
}
