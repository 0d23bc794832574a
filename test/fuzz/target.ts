import { DiffusionVLError, type ErrorKind } from '../../server/engine/errors';

/**
 * One fuzz target: a parser of untrusted input driven by arbitrary bytes. `fuzz` returns normally when the input was
 * accepted or refused the way the parser promises; anything else it throws (a {@link Finding}, or an error that
 * escaped the parser unclassified) is a finding. The fuzzer also counts a hang or unbounded memory as one.
 */
export interface FuzzTarget {
  /** Tokens the mutator splices in (field names, magic numbers): they get past checks random bytes rarely would. */
  dictionary?: string[];
  /** Longest input tried, in bytes. */
  maxLength?: number;
  /** Called once before the first input (fixtures, servers). */
  setup?(): Promise<void>;
  fuzz(data: Buffer): Promise<void> | void;
  teardown?(): Promise<void>;
}

/** A broken promise of the parser: the fuzzer records the input that caused it. */
export class Finding extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Finding';
  }
}

/**
 * The parsers' contract for a refused input: a DiffusionVLError of one of `kinds`, or (for the converter's readers,
 * whose plain errors the conversion wraps into its own kind) a plain `Error` whose message names `file`. A
 * TypeError, RangeError or the like escaping is a crash in disguise, so it is a finding.
 */
export function expectRefusal(err: unknown, contract: { kinds?: ErrorKind[]; plainNaming?: string[] }): void {
  if (err instanceof Finding) throw err;
  if (err instanceof DiffusionVLError) {
    if (contract.kinds?.includes(err.kind)) return;
    throw new Finding(`unexpected error kind ${err.kind}: ${err.message}`, { cause: err });
  }
  if (err instanceof Error && err.constructor === Error && contract.plainNaming) {
    if (contract.plainNaming.some((name) => err.message.includes(name))) return;
    throw new Finding(`error does not name the file (${contract.plainNaming.join(' or ')}): ${err.message}`, { cause: err });
  }
  const what = err instanceof Error ? `${err.constructor.name}: ${err.message}` : `non-Error thrown: ${String(err)}`;
  throw new Finding(`unclassified error escaped the parser: ${what}`, { cause: err });
}

/** Fails the run when a parser accepted an input but produced something its callers cannot rely on. */
export function invariant(ok: unknown, message: string): asserts ok {
  if (!ok) throw new Finding(`accepted input broke an invariant: ${message}`);
}
