import type { ImageSource } from '../protocol';
import { MAX_IMAGE_BYTES } from '../engine/image/limits';
import { badParam } from './errors';
import { IMAGE_FETCH_MAX_REDIRECTS, IMAGE_FETCH_TIMEOUT_MS } from './limits';
import { fetchRemoteImage } from './remoteImage';

export interface ImageUrlPolicy {
  /** `--allow-image-urls`: fetch http(s) image URLs (public addresses only); otherwise only `data:` URLs. */
  allowRemote: boolean;
  /** Tests only: which addresses a remote fetch may connect to. */
  allowAddress?: (address: string) => boolean;
}

const DATA_URL = /^data:([^,;]*)((?:;[^,;]*)*),/i;

/**
 * An image_url as the answering path's image source: always encoded bytes, never a path. `data:` URLs must be base64
 * images; their payload is checked (base64, byte limit) by the sidecar's own image input. Remote URLs are fetched
 * only when the policy allows it; `file:` and every other scheme are refused, so a request never names a file the
 * server would read.
 */
export async function imageSource(url: string, index: number, policy: ImageUrlPolicy, signal?: AbortSignal): Promise<ImageSource> {
  const param = 'messages';
  const m = DATA_URL.exec(url);
  if (m) {
    const mime = m[1].trim().toLowerCase();
    if (mime !== '' && !mime.startsWith('image/')) throw badParam(param, `image ${index + 1}: data: URL of type ${mime}, not an image`);
    if (!m[2].toLowerCase().split(';').includes('base64')) throw badParam(param, `image ${index + 1}: data: URLs must be base64 (data:image/png;base64,…)`);
    return { bytes: url.slice(m[0].length) };
  }
  if (/^data:/i.test(url)) throw badParam(param, `image ${index + 1}: malformed data: URL (expected data:image/<type>;base64,<data>)`);
  if (/^https?:/i.test(url)) {
    if (!policy.allowRemote) throw badParam(param, `image ${index + 1}: only data: URLs are accepted (this server was not started with --allow-image-urls)`);
    const bytes = await fetchRemoteImage(url, { maxBytes: MAX_IMAGE_BYTES, timeoutMs: IMAGE_FETCH_TIMEOUT_MS, maxRedirects: IMAGE_FETCH_MAX_REDIRECTS, allowAddress: policy.allowAddress }, signal);
    return { bytes: Buffer.from(bytes).toString('base64') };
  }
  throw badParam(param, `image ${index + 1}: unsupported URL scheme; send the image as a data: URL`);
}
