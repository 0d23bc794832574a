import { isAbsolute, resolve } from 'node:path';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { RootsListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { uriToPath, WorkspaceGuard } from '../lsp/pathGuard';

/** A path the agent may not read; its message is shown to the agent as the tool's error. */
export class OutsideRootsError extends Error {}

/**
 * The folders whose images the MCP tools may read: the `--root` flags when given (the client cannot widen them),
 * otherwise the roots the client declares (`roots/list`, refreshed on `notifications/roots/list_changed`). With
 * neither, no path is readable; image bytes still are. Containment is the sidecar's {@link WorkspaceGuard}, which
 * compares real paths, so a symlink under a root cannot reach a file outside it.
 */
export class AllowedRoots {
  readonly guard = new WorkspaceGuard();
  private readonly fixed: boolean;
  /** Settles once the client's roots are known (a tool call waits for the first answer). */
  private pending: Promise<void> = Promise.resolve();

  constructor(
    flags: string[],
    private readonly log: (msg: string) => void,
  ) {
    this.fixed = flags.length > 0;
    if (this.fixed) this.guard.setRoots(flags.map((f) => resolve(f)));
  }

  /** Follows the client's roots unless `--root` flags fixed them. Call before `connect`. */
  attach(server: Server): void {
    if (this.fixed) return;
    const previous = server.oninitialized;
    server.oninitialized = () => {
      previous?.();
      this.refresh(server);
    };
    server.setNotificationHandler(RootsListChangedNotificationSchema, () => this.refresh(server));
  }

  get folders(): readonly string[] {
    return this.guard.folders;
  }

  /**
   * The real path of an image the agent named (absolute, `file:` URI, or relative to the first root), or an
   * {@link OutsideRootsError}. Nothing is opened here and nothing outside the roots is ever opened.
   */
  async check(raw: string): Promise<string> {
    await this.pending;
    const roots = this.guard.folders;
    if (roots.length === 0) {
      throw new OutsideRootsError(
        `${raw}: no folders are open to this server (the client declared no roots and no --root was given); ` +
          'pass the image as base64 in `data`, or start the server with --root <folder>',
      );
    }
    const path = raw.startsWith('file:') ? uriToPath(raw) : isAbsolute(raw) ? raw : resolve(roots[0], raw);
    if (!path) throw new OutsideRootsError(`${raw}: only file: URIs are supported`);
    const real = await this.guard.check(resolve(path));
    if (!real) throw new OutsideRootsError(`${raw}: outside the allowed roots (${roots.join(', ')}); only images under them can be read`);
    return real;
  }

  private refresh(server: Server): void {
    if (!server.getClientCapabilities()?.roots) return;
    this.pending = server.listRoots().then(
      ({ roots }) => {
        const paths = roots.map((r) => uriToPath(r.uri)).filter((p): p is string => !!p);
        this.guard.setRoots(paths);
        this.log(`roots: ${paths.join(', ') || '(none)'}`);
      },
      (err: unknown) => this.log(`cannot list the client's roots: ${err instanceof Error ? err.message : String(err)}`),
    );
  }
}
