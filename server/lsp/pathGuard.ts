import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Lexical containment: `child` equals `root` or lies below it (both absolute, normalized). */
export function isInside(root: string, child: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

export function uriToPath(uri: string): string | undefined {
  if (!uri.startsWith('file:')) return undefined;
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}

/**
 * Keeps file access inside the workspace folders. Paths are compared after resolving symlinks, so a link inside the
 * workspace cannot reach a file outside it. With no folders at all (a bare LSP client), any absolute path is allowed.
 */
export class WorkspaceGuard {
  private roots: string[] = [];
  private realRoots: Promise<string[]> = Promise.resolve([]);

  setRoots(paths: string[]): void {
    this.roots = paths.map((p) => resolve(p));
    this.realRoots = Promise.all(this.roots.map((r) => realpath(r).catch(() => r)));
  }

  get folders(): readonly string[] {
    return this.roots;
  }

  get restricted(): boolean {
    return this.roots.length > 0;
  }

  /** The workspace folder holding `path` (lexically), longest match first. */
  folderOf(path: string): string | undefined {
    return [...this.roots].sort((a, b) => b.length - a.length).find((r) => isInside(r, path));
  }

  /** Resolves symlinks and returns the real path when it is allowed, otherwise undefined. Missing files resolve lexically. */
  async check(path: string): Promise<string | undefined> {
    if (!isAbsolute(path)) return undefined;
    const abs = resolve(path);
    let real: string;
    try {
      real = await realpath(abs);
    } catch {
      real = abs;
    }
    if (!this.restricted) return real;
    const roots = await this.realRoots;
    return roots.some((r) => isInside(r, real)) || this.roots.some((r) => isInside(r, real)) ? real : undefined;
  }
}

/** Allows no file at all: for front ends whose requests may carry image bytes only (the HTTP server). */
export class NoFilesGuard extends WorkspaceGuard {
  override get restricted(): boolean {
    return true;
  }

  override check(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }
}
