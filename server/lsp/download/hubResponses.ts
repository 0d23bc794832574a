/**
 * How the Hub's HTTP answers are read, shared by the listing and the file downloads: when to come back after a 429 or
 * 503, and what to tell the user when access is refused.
 */

/** Longest wait a `Retry-After` may impose on one attempt; a longer one is cut to this and retried. */
export const MAX_RETRY_AFTER_MS = 60_000;

/** Statuses worth another try: timeouts, rate limits, server trouble. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** `Retry-After` (delay-seconds or an HTTP date) in ms, capped; undefined when absent or unreadable. */
export function retryAfterMs(res: Response, now = Date.now()): number | undefined {
  const v = res.headers.get('retry-after')?.trim();
  if (!v) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  return Number.isFinite(ms) ? Math.min(Math.max(0, ms), MAX_RETRY_AFTER_MS) : undefined;
}

/** A plain sentence for 401/403, with the Hub's own `X-Error-Message` when it sends one. */
export function refusalMessage(what: string, res: Response): string {
  const hub = res.headers.get('x-error-message')?.trim();
  const advice =
    res.status === 401
      ? 'the repository is gated or private: accept its terms on the Hub and use an access token'
      : 'the access token has no access to this repository (gated: ask for access on its Hub page)';
  return `${what}: HTTP ${res.status}, ${advice}${hub ? ` (the Hub says: ${hub})` : ''}`;
}

/** A wait that an abort ends at once (rejecting with the abort reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}
