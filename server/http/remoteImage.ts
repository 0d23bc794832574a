import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { HttpError } from './errors';
import { isPublicAddress } from './addressPolicy';

export interface FetchLimits {
  maxBytes: number;
  timeoutMs: number;
  maxRedirects: number;
  /** Which resolved addresses may be connected to (tests narrow or widen it; the server uses isPublicAddress). */
  allowAddress?: (address: string) => boolean;
}

function refused(url: string, why: string): HttpError {
  return new HttpError(400, `image_url ${url}: ${why}`, 'image_url_refused', 'messages');
}

/**
 * A lookup that resolves every address of the host, refuses the host unless all of them are allowed, and hands the
 * socket the checked address: the connection goes exactly where the check looked (no second resolution to rebind).
 */
function checkedLookup(allow: (a: string) => boolean, onRefused: (why: string) => void): LookupFunction {
  return (hostname, options, callback) => {
    const answer = (err: NodeJS.ErrnoException | null, list: LookupAddress[]): void => {
      if (err) return callback(err, '', 0);
      const bad = list.find((a) => !allow(a.address));
      if (list.length === 0 || bad) {
        const why = bad ? `${hostname} resolves to ${bad.address}, a loopback, private or link-local address` : `${hostname} has no address`;
        onRefused(why);
        const e: NodeJS.ErrnoException = new Error(why);
        e.code = 'EADDRREFUSED';
        return callback(e, '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, l: LookupAddress[]) => void)(null, list);
      callback(null, list[0].address, list[0].family);
    };
    if (isIP(hostname)) return answer(null, [{ address: hostname, family: isIP(hostname) }]);
    dnsLookup(hostname, { all: true, verbatim: true }, answer);
  };
}

/**
 * Fetches an image over http(s) within the limits: every hop's addresses are checked before connecting, redirects
 * are followed only to http(s) URLs and re-checked, the body is cut off past `maxBytes`, and the whole fetch
 * (redirects included) is abandoned at `timeoutMs`. No cookies, no credentials, no proxy.
 */
export async function fetchRemoteImage(raw: string, limits: FetchLimits, signal?: AbortSignal): Promise<Uint8Array> {
  const allow = limits.allowAddress ?? isPublicAddress;
  const deadline = AbortSignal.timeout(limits.timeoutMs);
  const abort = signal ? AbortSignal.any([signal, deadline]) : deadline;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refused(raw, 'not a URL');
  }
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refused(raw, `${url.protocol} URLs are not fetched`);
    if (url.username || url.password) throw refused(raw, 'URLs with credentials are not fetched');
    const res = await get(url, allow, limits.maxBytes, abort).catch((err: unknown) => {
      if (err instanceof HttpError) throw err;
      if (deadline.aborted) throw refused(raw, `not fetched within ${limits.timeoutMs / 1000} s`);
      throw refused(raw, `cannot fetch (${(err as Error).message})`);
    });
    if ('location' in res) {
      if (hop >= limits.maxRedirects) throw refused(raw, `more than ${limits.maxRedirects} redirects`);
      url = new URL(res.location, url);
      continue;
    }
    return res.bytes;
  }
}

function get(url: URL, allow: (a: string) => boolean, maxBytes: number, signal: AbortSignal): Promise<{ location: string } | { bytes: Uint8Array }> {
  // An address literal is connected to without any lookup, so it is checked here.
  const literal = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(literal) && !allow(literal)) return Promise.reject(refused(url.href, `${literal} is a loopback, private or link-local address`));
  return new Promise((resolve, reject) => {
    let refusal: string | undefined;
    const lookup = checkedLookup(allow, (why) => (refusal = why));
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method: 'GET', lookup, signal, agent: false, headers: { accept: 'image/*', 'accept-encoding': 'identity' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        return resolve({ location: res.headers.location });
      }
      if (status !== 200) {
        res.resume();
        return reject(refused(url.href, `the server answered ${status}`));
      }
      if (Number(res.headers['content-length'] ?? 0) > maxBytes) {
        req.destroy();
        return reject(refused(url.href, `larger than ${maxBytes} bytes`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) {
          req.destroy();
          reject(refused(url.href, `larger than ${maxBytes} bytes`));
        } else chunks.push(c);
      });
      res.once('end', () => resolve({ bytes: new Uint8Array(Buffer.concat(chunks, size)) }));
      res.once('error', reject);
    });
    req.once('error', (err) => reject(refusal ? refused(url.href, refusal) : err));
    req.end();
  });
}
