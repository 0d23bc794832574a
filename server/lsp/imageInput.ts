import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { ImageInput } from '../engine/api';
import type { ImageSource } from '../protocol';
import { DiffusionVLError } from '../engine/errors';
import { MAX_IMAGE_BYTES } from '../engine/image/limits';
import { RequestError } from './errors';
import { uriToPath, type WorkspaceGuard } from './pathGuard';

export interface ResolvedImage {
  input: ImageInput;
  /** For messages: the path, or "image bytes". */
  label: string;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

async function checkedPath(path: string, guard: WorkspaceGuard, maxBytes = MAX_IMAGE_BYTES): Promise<string> {
  const real = await guard.check(path);
  if (!real) {
    throw guard.restricted
      ? new RequestError('pathOutsideWorkspace', `${path}: outside the workspace folders; only images inside the workspace can be read`)
      : new RequestError('params', `${path}: not an absolute path`);
  }
  let st;
  try {
    st = await stat(real);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DiffusionVLError('image', code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot read (${(err as Error).message})`);
  }
  if (!st.isFile()) throw new DiffusionVLError('image', `${path}: not a regular file`);
  const size = st.size;
  if (size === 0) throw new DiffusionVLError('image', `${path}: empty file`);
  if (size > maxBytes) throw new DiffusionVLError('image', `${path}: ${size} bytes, over the ${maxBytes}-byte image limit`);
  return real;
}

function decodeBase64(raw: string, maxBytes = MAX_IMAGE_BYTES): Uint8Array {
  // Accept data: URLs too, since that is what browsers and webviews hand out.
  const b64 = raw.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
  if (b64.length === 0) throw new DiffusionVLError('image', 'image bytes: empty');
  if ((b64.length * 3) / 4 > maxBytes + 3) throw new DiffusionVLError('image', `image bytes: over the ${maxBytes}-byte limit`);
  if (b64.length % 4 === 1 || !BASE64.test(b64)) throw new RequestError('params', 'image.bytes must be base64');
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

/** Validates an image source from the client and turns it into engine input; the byte limit is the engine's
 * MAX_IMAGE_BYTES (a parameter only so tests can use a small one). */
export async function resolveImage(src: unknown, guard: WorkspaceGuard, maxBytes = MAX_IMAGE_BYTES): Promise<ResolvedImage> {
  if (typeof src !== 'object' || src === null) throw new RequestError('params', 'image must be {path}, {uri} or {bytes}');
  const s = src as Partial<Record<keyof ImageSource | 'path' | 'uri' | 'bytes', unknown>>;
  if (typeof s.path === 'string') return { input: { path: await checkedPath(s.path, guard, maxBytes) }, label: s.path };
  if (typeof s.uri === 'string') {
    const path = uriToPath(s.uri);
    if (!path) throw new RequestError('params', `${s.uri}: only file: URIs are supported`);
    return { input: { path: await checkedPath(path, guard, maxBytes) }, label: path };
  }
  if (typeof s.bytes === 'string') return { input: { bytes: decodeBase64(s.bytes, maxBytes) }, label: 'image bytes' };
  throw new RequestError('params', 'image must be {path}, {uri} or {bytes}');
}

/** Reads a guarded path's bytes and their SHA-256 (hover cache key). */
export async function readWithHash(path: string, guard: WorkspaceGuard, maxBytes = MAX_IMAGE_BYTES): Promise<{ bytes: Uint8Array; sha256: string }> {
  const real = await checkedPath(path, guard, maxBytes);
  const bytes = new Uint8Array(await readFile(real));
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}
