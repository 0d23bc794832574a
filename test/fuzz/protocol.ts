/** Messages between the fuzzing command and its worker thread. */
export interface FuzzWorkerData {
  target: string;
  /** Committed seeds (read only). */
  seedDirs: string[];
  /** Where inputs that reached new code are written (and read back by the next run). */
  workDir: string;
  seconds: number;
  seed: number;
  /** [execs, length of the input being run] as Int32, then that input's bytes. */
  shared: SharedArrayBuffer;
}

export type FromFuzzWorker =
  | { type: 'stats'; execs: number; corpus: number; features: number }
  | { type: 'done'; execs: number; corpus: number; features: number }
  | { type: 'finding'; message: string; stack: string; input: Uint8Array }
  /** The harness itself failed (setup, a missing fixture): not a finding in the target. */
  | { type: 'error'; message: string; stack: string };
