import { checkNumericOption, checkStrategy, type GenerationOptions, type NumericOption } from '../engine/generationOptions';
import { badParam } from './errors';
import { MAX_IMAGES_PER_REQUEST } from './limits';

/** A chat-completions request, checked and reduced to what the answering path takes. */
export interface ChatRequest {
  /** The model the client named, if any (checked against the served one by the route). */
  model?: string;
  /** The last user message's text. */
  question: string;
  /** Every image URL of the conversation's user messages, in order (none: a text-only question). */
  imageUrls: string[];
  options: GenerationOptions;
  stream: boolean;
  /** Stop sequences: the answer ends before the first one (OpenAI's `stop`). */
  stop: string[];
}

/** Standard fields this server takes, with how it uses each one (anything else is refused by name). */
const ACCEPTED = new Set(['model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'seed', 'stream', 'stream_options', 'diffusionvl', 'n', 'user', 'metadata', 'store', 'frequency_penalty', 'presence_penalty', 'logprobs', 'response_format', 'parallel_tool_calls', 'stop']);

/** DiffusionVL's own settings, in the `diffusionvl` extra field, with the generation option each one sets. */
const EXTRA: Record<string, NumericOption | 'strategy'> = { steps: 'steps', remasking: 'strategy', threshold: 'threshold', block_size: 'blockSize', top_k: 'topK' };

const ROLES = new Set(['system', 'developer', 'user', 'assistant']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An option checked against the engine's table, its error reported under the request's field name. */
function option(name: NumericOption, value: unknown, param: string): number {
  try {
    return checkNumericOption(name, value);
  } catch (err) {
    throw badParam(param, `${param}${(err as Error).message.slice(name.length)}`);
  }
}

/**
 * Checks a chat-completions body field by field (400 naming the field on the first problem). The conversation is
 * answered as the Ask panel answers a follow-up: the last message must be the user's, its text is the question, and
 * the images of every user message stay in the picture; earlier questions, the assistant's answers and system
 * messages are accepted but are not part of the model's prompt (it uses the official evaluation's fixed prompt).
 */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw badParam('body', 'the body must be a JSON object');
  for (const key of Object.keys(body)) if (!ACCEPTED.has(key)) throw badParam(key, `${key}: unsupported field`);
  const b = body;
  if (b.model !== undefined && typeof b.model !== 'string') throw badParam('model', 'model must be a string');
  const options: GenerationOptions = {};

  if (b.max_tokens != null && b.max_completion_tokens != null && b.max_tokens !== b.max_completion_tokens) throw badParam('max_tokens', 'max_tokens and max_completion_tokens differ; give one');
  if (b.max_completion_tokens != null) options.maxNewTokens = option('maxNewTokens', b.max_completion_tokens, 'max_completion_tokens');
  else if (b.max_tokens != null) options.maxNewTokens = option('maxNewTokens', b.max_tokens, 'max_tokens');
  if (b.temperature != null) options.temperature = option('temperature', b.temperature, 'temperature');
  if (b.top_p != null) options.topP = option('topP', b.top_p, 'top_p');
  if (b.seed != null) options.seed = option('seed', b.seed, 'seed');
  if (b.stream != null && typeof b.stream !== 'boolean') throw badParam('stream', 'stream must be true or false');
  if (b.stream_options != null && !isObject(b.stream_options)) throw badParam('stream_options', 'stream_options must be an object');
  if (b.n != null && b.n !== 1) throw badParam('n', 'n must be 1 (one answer per request)');
  for (const k of ['frequency_penalty', 'presence_penalty'] as const) if (b[k] != null && b[k] !== 0) throw badParam(k, `${k} is not supported (only 0)`);
  if (b.logprobs != null && b.logprobs !== false) throw badParam('logprobs', 'logprobs are not supported');
  if (b.response_format != null && !(isObject(b.response_format) && b.response_format.type === 'text')) throw badParam('response_format', 'only {"type": "text"} is supported');
  if (b.diffusionvl != null) {
    if (!isObject(b.diffusionvl)) throw badParam('diffusionvl', 'diffusionvl must be an object');
    for (const [key, value] of Object.entries(b.diffusionvl)) {
      const name = EXTRA[key];
      const param = `diffusionvl.${key}`;
      if (!name) throw badParam(param, `${param}: unknown setting (known: ${Object.keys(EXTRA).join(', ')})`);
      if (value == null) continue;
      if (name === 'strategy') {
        try {
          options.strategy = checkStrategy(value);
        } catch (err) {
          throw badParam(param, `${param}${(err as Error).message.slice('strategy'.length)}`);
        }
      } else options[name] = option(name, value, param);
    }
  }

  const stop = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
  if (!Array.isArray(stop) || stop.length > 4 || !stop.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 256)) throw badParam('stop', 'stop must be a string or up to 4 non-empty strings');

  const { question, imageUrls } = parseMessages(b.messages);
  return { model: b.model as string | undefined, question, imageUrls, options, stream: b.stream === true, stop: stop as string[] };
}

function parseMessages(raw: unknown): { question: string; imageUrls: string[] } {
  if (!Array.isArray(raw) || raw.length === 0) throw badParam('messages', 'messages must be a non-empty array');
  const imageUrls: string[] = [];
  let lastText = '';
  raw.forEach((m: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw badParam(at, `${at} must be an object`);
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) throw badParam(`${at}.role`, `${at}.role must be one of ${[...ROLES].join(', ')}`);
    const texts: string[] = [];
    if (typeof m.content === 'string') texts.push(m.content);
    else if (Array.isArray(m.content)) {
      m.content.forEach((part: unknown, j) => {
        const pat = `${at}.content[${j}]`;
        if (!isObject(part)) throw badParam(pat, `${pat} must be an object`);
        if (part.type === 'text') {
          if (typeof part.text !== 'string') throw badParam(`${pat}.text`, `${pat}.text must be a string`);
          texts.push(part.text);
        } else if (part.type === 'image_url') {
          if (m.role !== 'user') throw badParam(pat, `${pat}: images are accepted in user messages only`);
          const iu = part.image_url;
          const url = typeof iu === 'string' ? iu : isObject(iu) ? iu.url : undefined;
          if (typeof url !== 'string' || url === '') throw badParam(`${pat}.image_url.url`, `${pat}.image_url.url must be a string`);
          if (isObject(iu) && iu.detail !== undefined && !['auto', 'low', 'high'].includes(iu.detail as string)) throw badParam(`${pat}.image_url.detail`, `${pat}.image_url.detail must be auto, low or high`);
          imageUrls.push(url);
        } else throw badParam(`${pat}.type`, `${pat}.type must be "text" or "image_url"`);
      });
    } else if (!(m.role === 'assistant' && m.content == null)) throw badParam(`${at}.content`, `${at}.content must be a string or an array of parts`);
    if (i === raw.length - 1) {
      if (m.role !== 'user') throw badParam(at, 'the last message must be the user\'s question');
      lastText = texts.join('\n').trim();
    }
  });
  if (lastText === '') throw badParam(`messages[${raw.length - 1}].content`, 'the last user message has no text (the question)');
  if (imageUrls.length > MAX_IMAGES_PER_REQUEST) throw badParam('messages', `${imageUrls.length} images; at most ${MAX_IMAGES_PER_REQUEST} per request`);
  return { question: lastText, imageUrls };
}
