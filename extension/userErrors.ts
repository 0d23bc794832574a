import * as vscode from 'vscode';
import { ErrorCodes } from '../server/protocol';
import { errorText, SidecarError } from './client';

/** A failure told the way a user reads it: what happened first, the technical message only in the log. */
export interface UserError {
  /** One sentence, no paths or library names. */
  headline: string;
  /** The button that fixes it, if there is one. */
  action?: { title: string; command: string; args?: unknown[] };
  /** The server's own message (paths, decoder output), for the log. */
  details: string;
}

const SHOW_LOG = { title: 'Show Log', command: 'diffusionvl.showLog' };
const PICK_ANOTHER = { title: 'Ask About Another Image…', command: 'diffusionvl.askAboutImage' };

/** The kind of image problem, from the server's message (its wording is stable: see server/engine/image). */
function imageHeadline(details: string): string {
  if (/no such file/i.test(details)) return 'The image file is gone: it was moved or deleted.';
  if (/empty (file|input)|0 bytes/i.test(details)) return 'The image file is empty.';
  if (/megapixel|pixel limit|pixels/i.test(details)) return 'The image is too large to open safely (it declares more pixels than DiffusionVL decodes).';
  if (/over the .*limit|bytes, over/i.test(details)) return 'The image file is too large.';
  if (/unsupported|not an image|not an svg/i.test(details)) return 'This file is not an image DiffusionVL can open (PNG, JPEG, GIF, WebP, BMP, TIFF, AVIF or SVG).';
  if (/external entities/i.test(details)) return 'This SVG refers to outside files, which DiffusionVL does not load.';
  return 'This image could not be read: the file looks damaged or cut short.';
}

export function toUserError(err: unknown): UserError {
  const details = errorText(err);
  const code = err instanceof SidecarError ? err.code : undefined;
  switch (code) {
    case ErrorCodes.InvalidImage:
      return { headline: imageHeadline(details), action: PICK_ANOTHER, details };
    case ErrorCodes.PathOutsideWorkspace:
      return { headline: 'This image is outside the open workspace folders, so DiffusionVL does not read it from disk. Paste it into the panel instead.', action: PICK_ANOTHER, details };
    case ErrorCodes.ModelUnavailable:
      return { headline: 'No model is ready: download one or choose a model folder.', action: { title: 'Download Model…', command: 'diffusionvl.downloadModel' }, details };
    case ErrorCodes.QueueFull:
      return { headline: 'DiffusionVL is busy with other questions; try again in a moment.', details };
    case ErrorCodes.RemoteUnavailable:
      // The sidecar's message names the server and what happened (unreachable, refused key, not allowed yet).
      return {
        headline: `The shared server did not answer: ${details.split('\n')[0]}. The next question tries it again.`,
        action: /API key/.test(details) ? { title: 'Set Server API Key…', command: 'diffusionvl.setServerApiKey' } : { title: 'Show Status', command: 'diffusionvl.showStatus' },
        details,
      };
    case ErrorCodes.UnsupportedModel:
      return { headline: 'This model is of a kind DiffusionVL cannot run.', action: { title: 'Use Local Model Folder…', command: 'diffusionvl.useLocalModelFolder' }, details };
    default:
      return { headline: details.split('\n')[0], action: SHOW_LOG, details };
  }
}

/** Logs the details and returns the headline (for callers that show it themselves, e.g. the answer panel). */
export function reportToLog(log: vscode.LogOutputChannel, what: string, e: UserError): void {
  log.error(`${what}: ${e.details}`);
}

/** Shows a failure once, as a notification with its fixing button; the details go to the log. */
export async function showUserError(log: vscode.LogOutputChannel, what: string, err: unknown): Promise<void> {
  const e = toUserError(err);
  reportToLog(log, what, e);
  const buttons = e.action ? [e.action.title] : [];
  if (e.action !== SHOW_LOG) buttons.push(SHOW_LOG.title);
  const pick = await vscode.window.showErrorMessage(`DiffusionVL: ${e.headline}`, ...buttons);
  const action = e.action;
  if (action && pick === action.title) await vscode.commands.executeCommand(action.command, ...(action.args ?? []));
  else if (pick === SHOW_LOG.title) log.show(true);
}
