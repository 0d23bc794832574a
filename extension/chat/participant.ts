import * as vscode from 'vscode';
import type { Sidecar } from '../client';
import { errorText } from '../client';
import { DESCRIBE_PROMPT } from '../describe';
import { IMAGE_EXTENSION_ALTERNATION } from '../../server/protocol/imageFiles';
import { activeImageUri, loadImage, toImageSource, type PickedImage } from '../images';
import { generationOptions } from '../settings';
import type { AttachedImages } from './attachments';

export const PARTICIPANT_ID = 'diffusionvl.chat';

/** Image paths written in the prompt itself (`/ask images/flow.png Where does the arrow point?`), tried relative to each workspace folder. */
const PATH_IN_TEXT = new RegExp(`(?:^|[\\s"'\`(])([^\\s"'\`()]+\\.(?:${IMAGE_EXTENSION_ALTERNATION}))(?=$|[\\s"'\`),.?!:;])`, 'gi');

async function referencedInText(prompt: string): Promise<{ image: PickedImage; text: string } | undefined> {
  for (const m of prompt.matchAll(PATH_IN_TEXT)) {
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      const uri = vscode.Uri.joinPath(folder.uri, m[1]);
      const exists = await Promise.resolve(vscode.workspace.fs.stat(uri)).then(() => true, () => false);
      if (exists) return { image: await loadImage(uri), text: m[1] };
    }
  }
  return undefined;
}

/** The prompt without the attachment markers VS Code leaves in it (`#file:chart.png`). */
function questionOf(request: vscode.ChatRequest): string {
  const ranges = request.references.map((r) => r.range).filter((r): r is [number, number] => !!r).sort((a, b) => b[0] - a[0]);
  let text = request.prompt;
  for (const [start, end] of ranges) text = text.slice(0, start) + text.slice(end);
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * `@diffusionvl` in the chat view: `/ask <question>` (the default) or `/describe` on an attached image, an image
 * path written in the prompt, or the image open in the editor. The answer streams in block by block, as in the
 * Ask panel.
 */
export function chatHandler(sidecar: Sidecar, attached: AttachedImages): vscode.ChatRequestHandler {
  return async (request, _context, stream, token) => {
    try {
      let question = questionOf(request);
      let image = (await attached.collect(request.references))[0];
      if (!image) {
        const inText = await referencedInText(question);
        if (inText) {
          image = inText.image;
          question = question.replace(inText.text, '').replace(/\s+/g, ' ').replace(/\s+([?.!,;:])/g, '$1').trim();
        }
      }
      const active = activeImageUri();
      if (!image && active) image = await loadImage(active);
      if (!image) {
        stream.markdown('Attach an image (drag it into the chat, paste it, or use **Add Context…**), name a workspace image such as `images/diagram.png`, or open one in the editor, then ask again.');
        return {};
      }
      if (request.command === 'describe') question = DESCRIBE_PROMPT;
      else if (!question) {
        stream.markdown(`What would you like to know about **${image.label}**? For example: \`@diffusionvl /ask What does this diagram show?\`, or \`/describe\`.`);
        return {};
      }
      if (image.uri) stream.reference(image.uri);
      stream.progress(`Reading ${image.label} with the local model…`);
      let shown = '';
      const show = (text: string, final: boolean): void => {
        // A block can end inside a multi-byte character (U+FFFD until the next block completes it).
        const safe = final ? text : text.replace(/\uFFFD+$/, '');
        if (!safe.startsWith(shown) || safe === shown) return;
        stream.markdown(safe.slice(shown.length));
        shown = safe;
      };
      const res = await sidecar.ask({ image: toImageSource(image), question, options: generationOptions() }, (p) => p.kind === 'block' && show(p.text, false), token);
      show(res.text.trimEnd(), true);
      if (!shown) stream.markdown('_(no answer)_');
      return { metadata: { image: image.label, stats: res.stats } };
    } catch (err) {
      if (token.isCancellationRequested) return {};
      return { errorDetails: { message: `DiffusionVL: ${errorText(err)}` } };
    }
  };
}

export function registerChatParticipant(ctx: vscode.ExtensionContext, handler: vscode.ChatRequestHandler): vscode.Disposable {
  const participant = vscode.chat.createChatParticipant(PARTICIPANT_ID, handler);
  participant.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'icon.png');
  return participant;
}
