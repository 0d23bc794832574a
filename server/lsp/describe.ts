import type { ServerSettings } from '../protocol';
import type { ModelManager } from './modelLifecycle';
import { generationDefaults } from './settings';
import type { WorkspaceGuard } from './pathGuard';
import type { InferenceQueue, Lane } from './queue';
import { readWithHash } from './imageInput';
import { LruCache } from '../engine/lruCache';

/** One line of text: the model sometimes adds line breaks or wraps its answer in quotes. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().replace(/^["'“”]+|["'“”]+$/g, '').trim();
}

/** Shortens to at most `max` characters, at a word boundary when one is near, marking the cut with an ellipsis. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return (space > max * 0.6 ? cut.slice(0, space) : cut).replace(/[\s,;:.-]+$/, '') + '…';
}

/**
 * Short image descriptions for hovers and code actions, cached by image content hash, prompt, token budget and model,
 * so re-hovering an unchanged image (or the same image under another name) costs nothing.
 */
export class Describer {
  private readonly cache = new LruCache<string, string>(512);

  constructor(
    private readonly deps: { guard: WorkspaceGuard; models: ModelManager; queue: InferenceQueue; settings: () => ServerSettings },
  ) {}

  async describe(path: string, prompt: string, maxNewTokens: number, lane: Lane, signal: AbortSignal): Promise<string> {
    const { bytes, sha256 } = await readWithHash(path, this.deps.guard);
    // The settings' generation defaults (steps, remasking, …) with the feature's own token budget.
    const options = { ...generationDefaults(this.deps.settings()), maxNewTokens };
    const key = [sha256, prompt, JSON.stringify(options), this.deps.models.answererId()].join('\0');
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const { value } = await this.deps.queue.run(lane, signal, () => this.deps.models.ask({ images: [{ bytes, label: path }], question: prompt, options }, { signal }));
    const text = oneLine(value.source === 'local' ? value.result.text : value.answer.text);
    this.cache.set(key, text);
    return text;
  }
}
