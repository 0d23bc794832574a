/**
 * The remote answering server's URL, as the client (consent, key, status) and the sidecar (settings) both read it:
 * one normal form, so that consent and key given for a URL are found again under the same name.
 */

/** `http(s)://host[:port][/path]` without a trailing slash, or undefined for anything else (credentials included:
 * they would end up in logs; the key has its own channel). */
export function normalizeServerUrl(raw: string): string | undefined {
  try {
    const u = new URL(raw.trim());
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || u.search || u.hash) return undefined;
    return u.href.replace(/\/+$/, '');
  } catch {
    return undefined;
  }
}

/**
 * Whether a server URL points at this machine (localhost, 127.0.0.0/8, ::1): images sent there never leave it, so
 * the extension does not ask before the first use and the sidecar needs no consent for it.
 */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (host === 'localhost' || host.endsWith('.localhost') || host === '[::1]') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
