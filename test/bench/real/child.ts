/**
 * The measuring side of `bench:real`: each phase runs in a child process of its own so that its peak RSS is its own.
 * The parent passes one JSON argument; the child prints its result as the last line of stdout.
 */
import { convertCheckpoint } from '../../../server/converter/convert';
import type { DecoderKind, GgufType, Precision } from '../../../server/engine/manifest';
import { measureAsk, measureForwards, type AskJob, type ForwardJob } from './phases';
import { microbench, type MicroJob } from './microbench';

export type ChildJob =
  | { kind: 'convert'; checkpoint: string; out: string; precision: Precision; decoder?: DecoderKind; ggufType?: GgufType }
  | ({ kind: 'forwards' } & ForwardJob)
  | ({ kind: 'ask' } & AskJob)
  | ({ kind: 'micro' } & MicroJob);

/** Peak resident set of this process so far, bytes. */
export const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

async function run(job: ChildJob): Promise<unknown> {
  switch (job.kind) {
    case 'convert': {
      const t0 = performance.now();
      await convertCheckpoint(job.checkpoint, job.out, { precision: job.precision, decoder: job.decoder, ggufType: job.ggufType });
      return { seconds: (performance.now() - t0) / 1000, peakRss: peakRss() };
    }
    case 'forwards':
      return measureForwards(job);
    case 'ask':
      return measureAsk(job);
    case 'micro':
      return microbench(job);
  }
}

run(JSON.parse(process.argv[2]) as ChildJob).then(
  (r) => console.log(JSON.stringify(r)),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
