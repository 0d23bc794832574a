/**
 * What went wrong, decided where it is raised. The CLI prints the message; the sidecar maps each kind to a protocol
 * error code in one place (server/lsp/errors.ts). Nothing classifies an error by its class name or message text.
 */
export type ErrorKind =
  /** The image is unreadable, empty, corrupt, too large or of an unsupported format. */
  | 'image'
  /** A generation option is unknown or out of range (see GENERATION_OPTIONS). */
  | 'options'
  /** The question or prompt ids cannot be run (empty, outside the vocabulary, placeholder count). */
  | 'prompt'
  /** The model folder is missing, not a converted model, or failed to load. */
  | 'model'
  /** A checkpoint this build cannot convert or run (e.g. an architecture not implemented yet). */
  | 'unsupportedCheckpoint'
  /** Fetching a checkpoint failed (network, hub, hash mismatch). */
  | 'download'
  /** Not enough free disk space for a download or a conversion. */
  | 'diskFull'
  /** Converting a checkpoint to ONNX failed. */
  | 'conversion'
  /** The caller cancelled the run. */
  | 'cancelled'
  /** A remote answering server cannot be reached, refused the request or answered with something unusable. */
  | 'remote';

export class DiffusionVLError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'DiffusionVLError';
  }
}

/** The kind of a raised error, or undefined for anything that is not a {@link DiffusionVLError} (an internal failure). */
export function errorKind(err: unknown): ErrorKind | undefined {
  return err instanceof DiffusionVLError ? err.kind : undefined;
}
