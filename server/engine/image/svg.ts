import { InputError } from '../api';

/**
 * SVG inputs are rasterised by librsvg (through sharp). librsvg should refuse to load remote resources when it has no
 * base URL, but an image from an untrusted source must never make the sidecar touch the network or the file system,
 * so every reference that is not in-document (`#id`) or inline (`data:`) is neutralised before rendering.
 */

/** Does this (non-raster) buffer look like SVG? Checked on text, so that no SVG reaches librsvg unsanitised. */
export function looksLikeSvg(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  return /<(?:[\w.-]+:)?svg[\s>/]/i.test(head);
}

function isLocalRef(value: string): boolean {
  const v = value.trim();
  return v === '' || v.startsWith('#') || /^data:/i.test(v);
}

/** Returns SVG text with external references removed; rejects external entities outright. */
export function sanitizeSvg(bytes: Uint8Array, label: string): Buffer {
  let text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (/<!ENTITY[^>]*\b(?:SYSTEM|PUBLIC)\b/i.test(text)) {
    throw new InputError(`${label}: SVG declares external entities, which are not allowed`);
  }
  // An external DTD is never needed to render; keep only the root name (and any internal subset after it).
  text = text.replace(
    /(<!DOCTYPE\s+[\w:.-]+)\s+(?:PUBLIC\s+(?:"[^"]*"|'[^']*')(?:\s+(?:"[^"]*"|'[^']*'))?|SYSTEM\s+(?:"[^"]*"|'[^']*'))/gi,
    '$1',
  );
  // Each rewrite can pair quotes differently in malformed text (a removed `url(` lets a later quote open a new
  // attribute value), so they run until nothing changes. Every change shortens the text, so this ends.
  for (let pass = 0; ; pass++) {
    const next = neutraliseReferences(text);
    if (next === text) break;
    if (pass === 16) throw new InputError(`${label}: SVG references could not be neutralised, which is not allowed`);
    text = next;
  }
  // Entities that carry markup or further references could build a reference the rewriting above never saw.
  if (/<!ENTITY\s+[^>]*?(?:"[^"]*[<&%][^"]*"|'[^']*[<&%][^']*')/i.test(text)) {
    throw new InputError(`${label}: SVG declares entities that contain markup or references, which are not allowed`);
  }
  // CSS reads `\75 rl(` and `&#117;rl(` as url(: whatever still names an outside resource once those are undone is
  // refused rather than guessed at.
  if (escapedExternalReference(text)) throw new InputError(`${label}: SVG refers to an outside resource through escaped text, which is not allowed`);
  return Buffer.from(text, 'utf8');
}

function neutraliseReferences(text: string): string {
  // href / xlink:href / src on any element (image, use, xi:include, feImage, xml-stylesheet PI, …), wherever the name
  // starts (a malformed attribute glued to the previous value included).
  text = text.replace(/((?<![\w.:-])(?:[\w.-]+:)?(?:href|src)\s*=\s*)("[^"]*"|'[^']*')/gi, (m, attr: string, quoted: string) =>
    isLocalRef(quoted.slice(1, -1)) ? m : `${attr}""`,
  );
  // CSS: url(...) in style attributes and <style>, and @import; CSS closes an unterminated url( at the end of a style.
  text = text.replace(/url\(\s*(?:"([^"]*)"|'([^']*)'|([^)"']*))\s*\)?/gi, (m, a?: string, b?: string, c?: string) =>
    isLocalRef(a ?? b ?? c ?? '') ? m : 'none',
  );
  return text.replace(/@import\b[^;]*;?/gi, '');
}

function fromCode(code: number): string {
  return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : '\ufffd';
}

function escapedExternalReference(text: string): boolean {
  if (!text.includes('\\') && !text.includes('&#')) return false;
  const plain = text
    .replace(/&#x([0-9a-f]{1,8});/gi, (_, h: string) => fromCode(parseInt(h, 16)))
    .replace(/&#(\d{1,10});/g, (_, d: string) => fromCode(Number(d)))
    .replace(/\\([0-9a-f]{1,6})\s?/gi, (_, h: string) => fromCode(parseInt(h, 16)))
    .replace(/\\(.)/g, '$1');
  if (/@import\b/i.test(plain)) return true;
  for (const m of plain.matchAll(/url\(\s*(?:"([^"]*)"|'([^']*)'|([^)"']*))/gi)) if (!isLocalRef(m[1] ?? m[2] ?? m[3] ?? '')) return true;
  return false;
}
