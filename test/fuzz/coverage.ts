import { Session } from 'node:inspector';

/**
 * Coverage feedback from V8's own block coverage (the inspector's precise coverage with counts): after each input,
 * every block of the watched scripts that ran, with its hit count bucketed as AFL and libFuzzer do (1, 2, 3, 4–7,
 * 8–15, 16–31, 32–127, 128+), is a feature. An input that shows a feature never seen before joins the corpus.
 * Taking the coverage also resets the counters, so each input is measured alone.
 */
export class BlockCoverage {
  private session = new Session();
  private seen = new Set<string>();

  constructor(private readonly watch: (url: string) => boolean) {
    this.session.connect();
  }

  async start(): Promise<void> {
    await this.post('Profiler.enable');
    await this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  /** Features seen so far. */
  get size(): number {
    return this.seen.size;
  }

  /** Collects (and resets) the counts since the last call; returns how many features were new. */
  async collect(): Promise<number> {
    const { result } = (await this.post('Profiler.takePreciseCoverage')) as { result: ScriptCoverage[] };
    let fresh = 0;
    for (const script of result) {
      if (!this.watch(script.url)) continue;
      for (const fn of script.functions) {
        for (const r of fn.ranges) {
          if (r.count === 0) continue;
          const key = `${script.url}:${r.startOffset}:${r.endOffset}:${bucket(r.count)}`;
          if (!this.seen.has(key)) {
            this.seen.add(key);
            fresh++;
          }
        }
      }
    }
    return fresh;
  }

  private post(method: string, params?: object): Promise<unknown> {
    return new Promise((ok, fail) => this.session.post(method, params ?? {}, (err, res) => (err ? fail(err) : ok(res))));
  }
}

interface ScriptCoverage {
  url: string;
  functions: { ranges: { startOffset: number; endOffset: number; count: number }[] }[];
}

function bucket(n: number): number {
  if (n <= 3) return n;
  if (n < 8) return 4;
  if (n < 16) return 5;
  if (n < 32) return 6;
  if (n < 128) return 7;
  return 8;
}
