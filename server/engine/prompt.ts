/**
 * The `qwen_2_5` chat prompt the official evaluation uses, and its tokenisation: the text is split at each
 * `<image>` marker, every chunk is encoded on its own (so the "\n" after an image never merges with what precedes
 * it) and chunks are joined with one image placeholder id each.
 */

export const SYSTEM_PROMPT = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.';
export const IMAGE_MARKER = '<image>';

/** The question text as the driver builds it: one `<image>` per image (space-joined) and "\n" in front, unless the question places them itself. */
export function questionWithImages(question: string, imageCount: number): string {
  if (imageCount === 0 || question.includes(IMAGE_MARKER)) return question;
  return `${Array(imageCount).fill(IMAGE_MARKER).join(' ')}\n${question}`;
}

export function chatPrompt(question: string, imageCount: number): string {
  return (
    `<|im_start|>system\n${SYSTEM_PROMPT}<|im_end|>\n` +
    `<|im_start|>user\n${questionWithImages(question, imageCount)}<|im_end|>\n` +
    '<|im_start|>assistant\n'
  );
}

export function tokenizeWithImages(prompt: string, encode: (text: string) => number[], imagePlaceholder: number): number[] {
  const ids: number[] = [];
  prompt.split(IMAGE_MARKER).forEach((chunk, i) => {
    if (i > 0) ids.push(imagePlaceholder);
    ids.push(...encode(chunk));
  });
  return ids;
}

export function countPlaceholders(ids: number[], imagePlaceholder: number): number {
  return ids.reduce((n, id) => n + (id === imagePlaceholder ? 1 : 0), 0);
}
