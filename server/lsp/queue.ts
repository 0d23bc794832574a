import { CancelledError } from '../engine/api';
import type { QueueStats } from '../protocol';
import { RequestError } from './errors';

/** Interactive work (asks, code actions) always runs before hovers. */
export type Lane = 'interactive' | 'hover';

/** The `queueFull` request kind, so every front end reports it as such (LSP QueueFull, HTTP 429). */
export class QueueFullError extends RequestError {
  constructor(waiting: number) {
    super('queueFull', `server busy: ${waiting} requests already waiting; try again shortly`);
    this.name = 'QueueFullError';
  }
}

interface Waiter {
  lane: Lane;
  start: () => void;
}

/**
 * One engine, one run at a time: the worker serializes anyway, and queueing here lets cancelled requests leave the
 * line before they ever reach the engine. Waiters are bounded so a request storm gets fast errors instead of memory.
 */
export class InferenceQueue {
  private readonly waiters: Waiter[] = [];
  private running = 0;
  private completed = 0;
  private failed = 0;
  private cancelled = 0;

  constructor(
    private readonly maxWaiting = 64,
    private readonly onChange: () => void = () => {},
  ) {}

  run<T>(lane: Lane, signal: AbortSignal | undefined, task: () => Promise<T>): Promise<T> {
    if (signal?.aborted) {
      this.cancelled++;
      return Promise.reject(new CancelledError());
    }
    if (this.waiters.length >= this.maxWaiting) return Promise.reject(new QueueFullError(this.waiters.length));
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiters.indexOf(waiter);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        this.cancelled++;
        this.onChange();
        reject(new CancelledError());
      };
      const waiter: Waiter = {
        lane,
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.running++;
          this.onChange();
          task().then(
            (v) => {
              this.completed++;
              resolve(v);
            },
            (err: unknown) => {
              if (err instanceof CancelledError) this.cancelled++;
              else this.failed++;
              reject(err);
            },
          ).finally(() => {
            this.running--;
            this.pump();
            this.onChange();
          });
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      // Interactive waiters go ahead of every hover but stay FIFO among themselves.
      const firstHover = lane === 'interactive' ? this.waiters.findIndex((w) => w.lane === 'hover') : -1;
      if (firstHover >= 0) this.waiters.splice(firstHover, 0, waiter);
      else this.waiters.push(waiter);
      this.onChange();
      this.pump();
    });
  }

  private pump(): void {
    if (this.running > 0) return;
    const next = this.waiters.shift();
    if (next) next.start();
  }

  get idle(): boolean {
    return this.running === 0 && this.waiters.length === 0;
  }

  stats(): QueueStats {
    return {
      running: this.running,
      waitingInteractive: this.waiters.filter((w) => w.lane === 'interactive').length,
      waitingHover: this.waiters.filter((w) => w.lane === 'hover').length,
      completed: this.completed,
      failed: this.failed,
      cancelled: this.cancelled,
    };
  }
}
