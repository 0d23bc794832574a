import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { repoRoot } from './paths';

const cli = join(repoRoot, 'bin', 'diffusionvl.js');

export interface Served {
  url: string;
  port: number;
  proc: ChildProcess;
  /** Everything the server wrote to stderr so far (its log). */
  log(): string;
  close(): Promise<void>;
}

/** Starts `diffusionvl serve --http --port 0 …args` as a real process and waits for its listening line. */
export function startServe(args: string[]): Promise<Served> {
  const proc = spawn(process.execPath, [cli, 'serve', '--http', '--port', '0', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(out);
      if (m) {
        resolve({
          url: m[1],
          port: Number(m[2]),
          proc,
          log: () => err,
          close: () =>
            new Promise<void>((done) => {
              if (proc.exitCode !== null) return done();
              proc.once('exit', () => done());
              proc.kill('SIGTERM');
            }),
        });
      }
    });
    proc.once('exit', (code) => reject(new Error(`serve exited with ${code} before listening:\n${out}\n${err}`)));
  });
}

export interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): { error: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown>;
}

/** One raw HTTP request (no client library between the test and the server). */
export function raw(url: string, opts: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer }): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${opts.path}`, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** POST a JSON body (a string is sent as is, so broken JSON can be sent too). */
export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<RawReply> {
  return raw(url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}
