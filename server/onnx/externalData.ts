import { closeSync, openSync, writeSync } from 'node:fs';
import { basename } from 'node:path';

/**
 * Appends tensors to one external-data file next to the .onnx file. ONNX Runtime memory-maps it when the model is
 * loaded from a path, so weights are never parsed through protobuf and the ModelProto stays tiny (no 2 GB limit).
 */
export class ExternalDataWriter {
  readonly location: string;
  private fd: number;
  private offset = 0;

  constructor(readonly path: string) {
    this.location = basename(path);
    this.fd = openSync(path, 'w');
  }

  /** Writes the bytes (64-byte aligned, which keeps SIMD loads of mapped weights aligned) and returns where they went. */
  append(bytes: Uint8Array): { offset: number; length: number } {
    return this.appendChunks((emit) => emit(bytes));
  }

  /**
   * Writes one tensor produced piece by piece, so a converted copy of a large weight (transposed, narrowed) never
   * has to exist whole in memory.
   */
  appendChunks(produce: (emit: (bytes: Uint8Array) => void) => void): { offset: number; length: number } {
    const pad = (64 - (this.offset % 64)) % 64;
    if (pad) {
      writeSync(this.fd, new Uint8Array(pad));
      this.offset += pad;
    }
    const at = this.offset;
    produce((bytes) => {
      let written = 0;
      // writeSync takes at most 2 GiB per call.
      while (written < bytes.length) written += writeSync(this.fd, bytes, written, Math.min(bytes.length - written, 1 << 30));
      this.offset += bytes.length;
    });
    return { offset: at, length: this.offset - at };
  }

  get bytesWritten(): number {
    return this.offset;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
