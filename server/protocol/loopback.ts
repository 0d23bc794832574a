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
