import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { isPublicAddress } from '../server/http/addressPolicy';
import { HttpError } from '../server/http/errors';
import { fetchRemoteImage } from '../server/http/remoteImage';

test('only public unicast addresses may be fetched from', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::127.0.0.1', '64:ff9b::7f00:1', '2001:db8::1', 'not-an-ip']) {
    assert.equal(isPublicAddress(a), false, a);
  }
  for (const a of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '93.184.216.34', '2606:4700:4700::1111', '2a00:1450:4001::200e']) assert.equal(isPublicAddress(a), true, a);
});

// The fetcher's own behaviour on a loopback server: the test's policy allows 127.0.0.1 only (the server's, never).
let server: Server;
let base: string;
const only127001 = (a: string) => a === '127.0.0.1';
before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/img') res.end(Buffer.alloc(100, 1));
    else if (req.url === '/big') res.end(Buffer.alloc(5000, 1));
    else if (req.url === '/hop') res.writeHead(302, { location: '/img' }).end();
    else if (req.url === '/loop') res.writeHead(302, { location: '/loop' }).end();
    else if (req.url === '/to-other') res.writeHead(302, { location: `http://127.0.0.2:${(server.address() as { port: number }).port}/img` }).end();
    else if (req.url === '/to-file') res.writeHead(302, { location: 'file:///etc/passwd' }).end();
    else if (req.url === '/slow') setTimeout(() => res.end('late'), 3000).unref();
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

const limits = { maxBytes: 1000, timeoutMs: 1000, maxRedirects: 2, allowAddress: only127001 };
const refusedWith = (re: RegExp) => (e: unknown) => e instanceof HttpError && e.status === 400 && re.test(e.message);

test('fetches within the limits and follows a redirect', async () => {
  assert.equal((await fetchRemoteImage(`${base}/img`, limits)).length, 100);
  assert.equal((await fetchRemoteImage(`${base}/hop`, limits)).length, 100);
});

test('every redirect is checked again: another address, another scheme, too many hops', async () => {
  await assert.rejects(fetchRemoteImage(`${base}/to-other`, limits), refusedWith(/127\.0\.0\.2/));
  await assert.rejects(fetchRemoteImage(`${base}/to-file`, limits), refusedWith(/file: URLs are not fetched/));
  await assert.rejects(fetchRemoteImage(`${base}/loop`, limits), refusedWith(/more than 2 redirects/));
});

test('size and time are limited, and the server itself is refused by the default policy', async () => {
  await assert.rejects(fetchRemoteImage(`${base}/big`, limits), refusedWith(/larger than 1000 bytes/));
  const t0 = Date.now();
  await assert.rejects(fetchRemoteImage(`${base}/slow`, limits), refusedWith(/not fetched within 1 s/));
  assert.ok(Date.now() - t0 < 2500);
  await assert.rejects(fetchRemoteImage(`${base}/img`, { ...limits, allowAddress: undefined }), refusedWith(/loopback, private or link-local/));
  await assert.rejects(fetchRemoteImage(`http://localhost:${base.split(':')[2]}/img`, { ...limits, allowAddress: undefined }), refusedWith(/loopback, private or link-local/));
  await assert.rejects(fetchRemoteImage(`http://user:pw@127.0.0.1/img`, limits), refusedWith(/credentials/));
});
