// Load benchmark of `diffusionvl serve --http`: N concurrent clients for a bounded time on loopback, each asking
// the shipped examples' questions in random order. Every request must be answered (with the answer the same
// question got alone, before the load: no answer mixed up with another) or refused with 429; the server's resident
// memory is compared before and after. Prints requests/minute and p50/p95 latency.
// Usage: npm run bench:http [-- --clients 50 --seconds 30 --model <converted-dir>]
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { postJson, startServe } from '../helpers/httpServe';
import { repoRoot } from '../helpers/paths';

interface Example {
  file: string;
  qas: { question: string }[];
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { clients: { type: 'string', default: '50' }, seconds: { type: 'string', default: '30' }, model: { type: 'string' }, 'max-queue': { type: 'string', default: '16' } } });
  const clients = Number(values.clients);
  const seconds = Number(values.seconds);
  const dir = join(repoRoot, 'media', 'examples');
  const examples = JSON.parse(readFileSync(join(dir, 'examples.json'), 'utf8')) as Example[];
  const cases = examples.flatMap((e) => {
    const url = `data:image/png;base64,${readFileSync(join(dir, e.file)).toString('base64')}`;
    return e.qas.map((qa) => ({ name: `${e.file}: ${qa.question}`, body: { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: qa.question }] }], max_tokens: 32 } }));
  });
  const server = await startServe([...(values.model ? ['--model', values.model] : []), '--max-queue', values['max-queue']!]);
  const pid = server.proc.pid!;
  try {
    // Each question alone first: the answers every loaded answer must equal.
    const expected = new Map<string, string>();
    for (const c of cases) {
      const r = await postJson(server.url, c.body);
      if (r.status !== 200) throw new Error(`${c.name}: ${r.status} ${r.text}`);
      expected.set(c.name, (r.json() as unknown as { choices: { message: { content: string } }[] }).choices[0].message.content);
    }
    const rssBefore = rssMb(pid);
    const latencies: number[] = [];
    const counts = { ok: 0, refused: 0, mixedUp: 0, other: 0 };
    let peak = rssBefore;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 250);
    const end = Date.now() + seconds * 1000;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (Date.now() < end) {
          const c = cases[Math.floor(Math.random() * cases.length)];
          const s = performance.now();
          const r = await postJson(server.url, c.body);
          if (r.status === 200) {
            latencies.push(performance.now() - s);
            const text = (r.json() as unknown as { choices: { message: { content: string } }[] }).choices[0].message.content;
            if (text === expected.get(c.name)) counts.ok++;
            else {
              counts.mixedUp++;
              console.error(`mixed up: ${c.name}: got ${JSON.stringify(text)}, alone ${JSON.stringify(expected.get(c.name))}`);
            }
          } else if (r.status === 429) {
            counts.refused++;
            // As a well-behaved client: wait as told.
            await new Promise((res) => setTimeout(res, Number(r.headers['retry-after'] ?? 1) * 1000));
          } else {
            counts.other++;
            console.error(`unexpected ${r.status}: ${r.text}`);
          }
        }
      }),
    );
    const wallMin = (Date.now() - t0) / 60_000;
    clearInterval(sampler);
    // Let the server settle (garbage collection runs on its own schedule), then measure again.
    await new Promise((r) => setTimeout(r, 3000));
    const rssAfter = rssMb(pid);
    latencies.sort((a, b) => a - b);
    const load = loadavg().map((l) => l.toFixed(1)).join(' ');
    console.log(`HTTP load, ${clients} clients for ${seconds} s, ${cases.length} distinct questions (figures taken under load: load average ${load}, shared machine)`);
    console.log(`  answered ${counts.ok}, refused 429 ${counts.refused}, mixed up ${counts.mixedUp}, other ${counts.other}`);
    console.log(`  ${(counts.ok / wallMin).toFixed(0)} answered requests/minute; latency p50 ${percentile(latencies, 50).toFixed(0)} ms, p95 ${percentile(latencies, 95).toFixed(0)} ms`);
    console.log(`  server RSS: ${rssBefore.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB, ${rssAfter.toFixed(0)} MB after`);
    const rssBack = rssAfter <= rssBefore * 1.1 + 20;
    if (!rssBack) console.error(`RSS did not come back: ${rssAfter.toFixed(0)} MB after vs ${rssBefore.toFixed(0)} MB before`);
    return counts.mixedUp === 0 && counts.other === 0 && counts.ok > 0 && rssBack ? 0 : 1;
  } finally {
    await server.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
