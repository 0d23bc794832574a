import { dirname, isAbsolute, join, win32 } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMAGE_EXTENSION_ALTERNATION } from '../protocol/imageFiles';

/** An image mentioned in a document. Offsets are UTF-16 indices into the document text. */
export interface ImageRef {
  kind: 'markdown' | 'html' | 'code';
  /** The path as written (without `<>` or quotes). */
  target: string;
  /** The whole reference: `![alt](path)`, the `<img …>` tag, or the path in code. */
  start: number;
  end: number;
  /** Alt text: for Markdown the span inside `[…]`, for HTML the whole `alt=…` attribute; `text` is the value. */
  alt?: { start: number; end: number; text: string };
  /** HTML without an alt attribute: where ` alt="…"` goes. */
  altInsertAt?: number;
}

const IMAGE_EXT = IMAGE_EXTENSION_ALTERNATION;
const HAS_IMAGE_EXT = new RegExp(`\\.(?:${IMAGE_EXT})(?:[?#][^\\s]*)?$`, 'i');
const MARKDOWN_LANGS = new Set(['markdown', 'mdx', 'quarto', 'rmd']);
const HTML_LANGS = new Set(['html', 'xhtml', 'vue', 'svelte', 'astro', 'php', 'handlebars', 'razor', 'jsx', 'javascriptreact', 'typescriptreact']);

// ![alt](<path> "title") or ![alt](path 'title'); alt may not span lines.
const MD_IMAGE = /!\[([^\]\n]*)\]\(\s*(?:<([^>\n]+)>|([^\s)]+))(?:\s+(?:"[^"\n]*"|'[^'\n]*'|\([^)\n]*\)))?\s*\)/g;
const HTML_IMG = /<img\b[^>]*>/gi;
const HTML_ATTR = /([A-Za-z_:][-\w:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
// A string literal on one line: '…', "…" or `…`, with escapes.
const QUOTED = /(["'`])((?:\\.|(?!\1)[^\\\n])*)\1/g;
// A bare path in a comment or prose: no spaces, ends with an image extension.
const BARE_PATH = new RegExp(`[^\\s"'\`()<>[\\]{},;=*]+\\.(?:${IMAGE_EXT})(?![\\w])`, 'gi');

function isRemote(target: string): boolean {
  // URLs and data: URIs, but not Windows drive letters (C:\…) and not file: URIs.
  return /^[a-z][a-z0-9+.-]*:/i.test(target) && !/^[a-z]:[\\/]/i.test(target) && !/^file:/i.test(target);
}

function overlaps(refs: { start: number; end: number }[], start: number, end: number): boolean {
  return refs.some((r) => start < r.end && end > r.start);
}

function markdownRefs(text: string, out: ImageRef[]): void {
  for (const m of text.matchAll(MD_IMAGE)) {
    const target = m[2] ?? m[3];
    if (!target || isRemote(target)) continue;
    const start = m.index;
    out.push({ kind: 'markdown', target, start, end: start + m[0].length, alt: { start: start + 2, end: start + 2 + m[1].length, text: m[1] } });
  }
}

function htmlRefs(text: string, out: ImageRef[]): void {
  for (const m of text.matchAll(HTML_IMG)) {
    const tag = m[0];
    const start = m.index;
    let target: string | undefined;
    let alt: ImageRef['alt'];
    for (const a of tag.slice(4).matchAll(HTML_ATTR)) {
      const name = a[1].toLowerCase();
      const value = a[2] ?? a[3] ?? a[4];
      if (name === 'src' && value !== undefined) target = value.trim();
      if (name === 'alt') {
        const attrStart = start + 4 + a.index;
        alt = { start: attrStart, end: attrStart + a[0].length, text: value ?? '' };
      }
    }
    if (!target || isRemote(target)) continue;
    const ref: ImageRef = { kind: 'html', target, start, end: start + tag.length, alt };
    if (!alt) ref.altInsertAt = start + 4;
    out.push(ref);
  }
}

function codeRefs(text: string, out: ImageRef[]): void {
  // Every string literal, used or not, so bare-path scanning does not pick pieces out of URLs or templates.
  const strings: { start: number; end: number }[] = [];
  for (const m of text.matchAll(QUOTED)) {
    const body = m[2];
    const start = m.index + 1;
    strings.push({ start, end: start + body.length });
    if (!HAS_IMAGE_EXT.test(body) || isRemote(body) || body.includes('${')) continue;
    if (overlaps(out, start, start + body.length)) continue;
    out.push({ kind: 'code', target: body.replace(/\\(.)/g, '$1'), start, end: start + body.length });
  }
  for (const m of text.matchAll(BARE_PATH)) {
    const start = m.index;
    const end = start + m[0].length;
    if (isRemote(m[0]) || overlaps(out, start, end) || overlaps(strings, start, end)) continue;
    out.push({ kind: 'code', target: m[0], start, end });
  }
}

/** Finds image references in a document. Markdown gets `![…](…)` and `<img>`; HTML-like languages `<img>`; anything
 * else string literals and bare paths (comments) that end with an image extension. */
export function findImageRefs(text: string, languageId: string): ImageRef[] {
  const out: ImageRef[] = [];
  if (MARKDOWN_LANGS.has(languageId)) {
    markdownRefs(text, out);
    htmlRefs(text, out);
  } else if (HTML_LANGS.has(languageId)) {
    htmlRefs(text, out);
    if (languageId !== 'html' && languageId !== 'xhtml') codeRefs(text, out);
  } else {
    codeRefs(text, out);
  }
  return out.sort((a, b) => a.start - b.start);
}

/** The innermost reference containing `offset` (ends inclusive, so a cursor just after the path still counts). */
export function refAt(refs: ImageRef[], offset: number): ImageRef | undefined {
  let best: ImageRef | undefined;
  for (const r of refs) {
    if (offset >= r.start && offset <= r.end && (!best || r.end - r.start < best.end - best.start)) best = r;
  }
  return best;
}

/** Whether an alt-text action applies: Markdown/HTML image whose alt text is missing or blank. */
export function needsAltText(ref: ImageRef): boolean {
  return ref.kind !== 'code' && (!ref.alt || ref.alt.text.trim() === '');
}

/**
 * Filesystem paths a reference may denote, most likely first. Relative paths resolve against the document's folder;
 * a leading `/` may mean the workspace folder (web-style) or the filesystem root. Query strings and fragments are
 * dropped and percent-escapes decoded (Markdown links are URLs).
 */
export function candidatePaths(target: string, docPath: string, workspaceFolder: string | undefined): string[] {
  let t = target.trim();
  if (/^file:/i.test(t)) {
    try {
      return [fileURLToPath(t)];
    } catch {
      return [];
    }
  }
  if (isRemote(t) || t.startsWith('~')) return [];
  t = t.replace(/[?#].*$/, '');
  if (/%[0-9a-f]{2}/i.test(t)) {
    try {
      t = decodeURIComponent(t);
    } catch {
      // Not an escape after all; keep the literal text.
    }
  }
  if (t === '') return [];
  if (win32.isAbsolute(t) && /^[a-z]:/i.test(t)) return [t];
  if (isAbsolute(t)) return workspaceFolder ? [join(workspaceFolder, t), t] : [t];
  return [join(dirname(docPath), t)];
}
