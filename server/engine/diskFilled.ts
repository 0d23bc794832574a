import { DiffusionVLError } from './errors';

/** A write that failed because the volume filled up (ENOSPC, or EDQUOT for a user's quota). */
export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * The `diskFull` error for a write that ran out of space midway (another program filled the disk after our check):
 * one message for the sidecar, the MCP and HTTP servers and the CLI.
 */
export function diskFilledWhileWriting(path: string, during: 'download' | 'conversion'): DiffusionVLError {
  const what = during === 'download' ? 'downloading; the part already downloaded is kept and resumes' : 'converting; nothing of the new model was kept';
  return new DiffusionVLError('diskFull', `the disk filled up while ${what} (${path}): free some space and try again`);
}
