// Soak benchmark: 200 sequential asks against the spawned sidecar; prints the server's resident-memory growth.
// Usage: npm run bench:soak [-- --asks 200 --model <converted-dir>]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Methods, type AskResult, type StatusResult } from '../../server/protocol';
import { startLspServer } from '../helpers/lspClient';
import { fixturesDir } from '../helpers/paths';
import { ensureTinyModel } from '../helpers/tinyModel';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { asks: { type: 'string', default: '200' }, warmup: { type: 'string', default: '20' }, model: { type: 'string' } } });
  const asks = Number(values.asks);
  const warmup = Number(values.warmup);
  const model = values.model ?? (await ensureTinyModel('fp32'));
  const images = ['lsp/diagram.png', 'golden/images/img3_tiny_37x29.png', 'golden/images/img5_gray_64x48.png'].map((p) => join(fixturesDir, p));
  const client = await startLspServer({ workspaceFolders: [fixturesDir], args: ['--model', model], settings: { executionProvider: 'cpu' } });
  const rss = async () => (await client.request<StatusResult>(Methods.status, null)).memory.rssBytes;
  const ask = (i: number) =>
    client.request<AskResult>(Methods.ask, {
      image: { path: images[i % images.length] },
      question: `Question ${i % 7}: what is in this picture?`,
      options: { maxNewTokens: 8 },
      streamToken: i,
    });
  try {
    for (let i = 0; i < warmup; i++) await ask(i);
    const start = await rss();
    const t0 = performance.now();
    let peak = start;
    for (let i = 0; i < asks; i++) {
      await ask(i);
      if (i % 20 === 19) {
        const now = await rss();
        peak = Math.max(peak, now);
        console.log(`  ${i + 1}/${asks} asks, rss ${(now / 2 ** 20).toFixed(1)} MiB`);
      }
    }
    const end = await rss();
    const secs = (performance.now() - t0) / 1000;
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    console.log(`soak: ${asks} sequential asks in ${secs.toFixed(1)} s (${(asks / secs).toFixed(2)} asks/s)`);
    console.log(`soak: server rss after ${warmup} warm-up asks ${mib(start)}, after soak ${mib(end)}, peak ${mib(peak)}`);
    console.log(`soak: rss growth ${(((end - start) / start) * 100).toFixed(2)}%`);
  } finally {
    await client.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
