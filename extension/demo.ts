import * as vscode from 'vscode';
import { MODELS } from './settings';

/**
 * How the extension speaks about the demo model it ships: a toy that shows every feature on first run, labelled as
 * such wherever its text appears, with the way to a real model one click away.
 */
export const DEMO_KNOWS = 'shapes, colours, counts, short words, arrows between lettered boxes and bar charts';

export const DEMO_SUMMARY =
  `The demo model is tiny (1.7 M parameters) and was trained only on synthetic diagrams (${DEMO_KNOWS}). ` +
  'On other images its answers are not meaningful.';

export const REAL_MODEL_HINT = `For real images, download DiffusionVL 3B (${MODELS['3B'].download}) or 7B (${MODELS['7B'].download}), or use a model folder you already have.`;

/** Commands a demo note may link to (trusted links in hovers and tooltips). */
export const REAL_MODEL_COMMANDS = ['diffusionvl.downloadModel', 'diffusionvl.useLocalModelFolder'];

/** Markdown for tooltips and hovers: what the demo is and the links to a real model. */
export function demoMarkdown(short = false): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.isTrusted = { enabledCommands: REAL_MODEL_COMMANDS };
  md.appendMarkdown(
    short
      ? '$(beaker) *Demo model answer: it only knows synthetic diagrams.* '
      : `$(beaker) **Demo model.** ${DEMO_SUMMARY}\n\n${REAL_MODEL_HINT} `,
  );
  md.appendMarkdown('[Download Model…](command:diffusionvl.downloadModel) · [Use Local Model Folder…](command:diffusionvl.useLocalModelFolder)');
  return md;
}

/** A hover from the demo model gets the demo mark under its text. */
export function labelDemoHover(hover: vscode.Hover): vscode.Hover {
  return new vscode.Hover([...hover.contents, demoMarkdown(true)], hover.range);
}

let insertNoticeShown = false;

/**
 * After text from the demo model went into a document: say so once per window (a status-bar note every time), with
 * the buttons that get a real model.
 */
export function noteDemoInsert(what: string): void {
  void vscode.window.setStatusBarMessage(`$(beaker) ${what} written by the demo model`, 8000);
  if (insertNoticeShown) return;
  insertNoticeShown = true;
  void vscode.window
    .showInformationMessage(`The ${what} was written by the demo model. ${DEMO_SUMMARY}`, 'Download Model…', 'Use Local Model Folder…')
    .then((pick) => {
      if (pick === 'Download Model…') void vscode.commands.executeCommand('diffusionvl.downloadModel');
      if (pick === 'Use Local Model Folder…') void vscode.commands.executeCommand('diffusionvl.useLocalModelFolder');
    });
}
