import type { IncomingMessage } from 'node:http';
import { HttpError } from './errors';

/**
 * Reads a JSON body within `maxBytes` and `deadlineMs`: a declared length over the limit is refused before a byte is
 * read, a body that grows past it is cut off, and a client that trickles its body is answered 408 at the deadline.
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number, deadlineMs: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  // Only JSON: a browser cannot send it cross-origin without a CORS preflight, which this server refuses by default.
  if (type !== 'application/json') return Promise.reject(new HttpError(415, 'the body must be JSON (Content-Type: application/json)', 'unsupported_media_type'));
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > maxBytes) return Promise.reject(tooLarge(maxBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: HttpError, value?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.removeListener('data', onData);
      if (err) {
        // Stop reading; the reply is sent and the connection closed by the caller.
        req.pause();
        reject(err);
      } else resolve(value);
    };
    const timer = setTimeout(() => finish(new HttpError(408, `the request body did not arrive within ${deadlineMs / 1000} s`, 'request_timeout')), deadlineMs);
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) finish(tooLarge(maxBytes));
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('error', () => finish(new HttpError(400, 'the request body could not be read', 'invalid_body')));
    req.once('end', () => {
      if (done) return;
      let value: unknown;
      try {
        value = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
      } catch (err) {
        finish(new HttpError(400, `the body is not valid JSON: ${(err as Error).message}`, 'invalid_json'));
        return;
      }
      finish(undefined, value);
    });
  });
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, `the request body is larger than ${maxBytes} bytes`, 'request_too_large');
}
