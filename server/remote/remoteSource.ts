import type { ImageInput, RunOptions } from '../engine/api';
import { CancelledError, DiffusionVLError } from '../engine/api';
import type { RemoteStatus } from '../protocol';
import { isLoopbackUrl } from '../protocol/remoteServer';
import { ChatClient, RemoteError, type ChatAnswer } from './chatClient';
import { imageDataUrl } from './imagePayload';

export interface RemoteConfig {
  url: string;
  model: string;
  /** The user's consent to send images there (needed unless the URL is loopback). */
  allowed: boolean;
  apiKey?: string;
}

/**
 * A remote OpenAI-compatible server answering in place of the local engine: the same question, image and options
 * in, the answer so far out after every streamed chunk (one chunk per committed block from `diffusionvl serve
 * --http`), and a status saying how the last request went. Nothing leaves the machine before consent is given for
 * a non-loopback URL.
 */
export class RemoteSource {
  private readonly client: ChatClient;
  private state: RemoteStatus['state'] = 'unknown';
  private error?: string;
  private model?: string;

  constructor(
    private readonly config: RemoteConfig,
    private readonly onChange: () => void,
    private readonly log: (msg: string, level?: 'info' | 'warning' | 'error') => void,
  ) {
    this.client = new ChatClient(config.url, config.apiKey, config.model);
  }

  get url(): string {
    return this.config.url;
  }

  /** Whether images may be sent: loopback, or the user said yes for this URL. */
  get allowed(): boolean {
    return this.config.allowed || isLoopbackUrl(this.config.url);
  }

  status(): RemoteStatus {
    return { url: this.config.url, hasKey: !!this.config.apiKey, allowed: this.allowed, model: this.model ?? (this.config.model || undefined), state: this.state, error: this.error };
  }

  /** One question about its images; `onText` gets the answer so far after every chunk. */
  async ask(req: { images: ImageInput[]; question: string; options: RunOptions }, signal: AbortSignal, onText: (textSoFar: string) => void): Promise<ChatAnswer> {
    if (!this.allowed) {
      throw new DiffusionVLError('remote', `images are not sent to ${this.config.url} until you allow it: ask a question in VS Code to be asked, or clear diffusionvl.server.url to use the local model`);
    }
    const imageUrls: string[] = [];
    for (const image of req.images) imageUrls.push(await imageDataUrl(image));
    try {
      const answer = await this.client.ask({ imageUrls, question: req.question, options: req.options }, signal, onText);
      this.model = answer.model;
      this.set('ok');
      return answer;
    } catch (err) {
      if (err instanceof CancelledError) throw err;
      const msg = err instanceof Error ? err.message : String(err);
      // An unusable image is the request's fault, not the server's.
      if (err instanceof RemoteError) this.set(err.failure, msg);
      else if (!(err instanceof DiffusionVLError)) this.set('failed', msg);
      this.log(`remote server: ${msg}`, 'warning');
      throw err;
    }
  }

  private set(state: RemoteStatus['state'], error?: string): void {
    if (state === this.state && error === this.error) return;
    this.state = state;
    this.error = error;
    this.onChange();
  }
}
