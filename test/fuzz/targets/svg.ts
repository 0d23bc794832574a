import { gunzipSync } from 'node:zlib';
import { decodeImageRaw } from '../../../server/engine/image/decode';
import { MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from '../../../server/engine/image/limits';
import { looksLikeSvg, sanitizeSvg } from '../../../server/engine/image/svg';
import { expectRefusal, invariant, type FuzzTarget } from '../target';

/**
 * An oracle written apart from the sanitiser: the references a renderer would still follow once XML character
 * references, one level of internal entities and CSS escapes are undone. Anything but `#id`, `data:` or empty is
 * external.
 */
function externalReferences(svg: string): string[] {
  const entities = new Map<string, string>();
  for (const m of svg.matchAll(/<!ENTITY\s+([\w:.-]+)\s+(?:"([^"]*)"|'([^']*)')/g)) entities.set(m[1], m[2] ?? m[3] ?? '');
  const expand = (t: string) => t.replace(/&([\w:.-]+);/g, (m, name: string) => entities.get(name) ?? m);
  const charRefs = (t: string) => t.replace(/&#x([0-9a-f]+);?/gi, (_, h: string) => safeChar(parseInt(h, 16))).replace(/&#(\d+);?/g, (_, d: string) => safeChar(Number(d)));
  const local = (v: string) => /^\s*(?:$|#|data:)/i.test(v);
  const refs: string[] = [];
  // Attribute values are delimited in the raw text (a reference inside a value cannot close it), then decoded.
  for (const m of expand(svg).matchAll(/(?<![\w.:-])(?:[\w.-]+:)?(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')/gi)) {
    if (!local(charRefs(expand(m[1] ?? m[2] ?? '')))) refs.push(m[0]);
  }
  // CSS sees the text with character references undone, and undoes its own escapes.
  const css = charRefs(expand(svg)).replace(/\\([0-9a-f]{1,6})\s?/gi, (_, h: string) => safeChar(parseInt(h, 16))).replace(/\\(.)/g, '$1');
  for (const m of css.matchAll(/url\(\s*(?:"([^"]*)"|'([^']*)'|([^)"']*))/gi)) if (!local(m[1] ?? m[2] ?? m[3] ?? '')) refs.push(m[0]);
  for (const m of css.matchAll(/@import\b[^;]*/gi)) refs.push(m[0]);
  return refs;
}

function safeChar(code: number): string {
  return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : '\ufffd';
}

/**
 * Input: SVG text (or anything: non-SVG goes the raster way), decoded as any image is, after the sanitiser; what the
 * sanitiser lets through must hold no external reference by the oracle above.
 */
export const target: FuzzTarget = {
  maxLength: 16 * 1024,
  dictionary: [
    '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4">', '</svg>', '<!DOCTYPE svg [', ']>', '<!ENTITY a "', '<!ENTITY % p SYSTEM "',
    '&a;', '&#34;', '&#x22;', '&#104;', '<image href="', 'xlink:href="', ' src="', '<use href="#x"/>', '<style>', '</style>', 'url(',
    '\\75 rl(', '@import', '@\\69mport', 'file:///etc/passwd', 'http://127.0.0.1/', 'data:image/png;base64,', '<?xml-stylesheet href="',
    '<xi:include href="', '<feImage href="', 'width="100000000"', 'height="100000000"', 'viewBox="0 0 1e9 1e9"', '<text>', '<rect width="1" height="1" fill="red"/>',
  ],
  async fuzz(data) {
    // What the decoder sanitises: the text itself, or an svgz's inflated text.
    let text: Buffer | undefined = data;
    if (data[0] === 0x1f && data[1] === 0x8b) {
      try {
        text = gunzipSync(data, { maxOutputLength: MAX_IMAGE_BYTES });
      } catch {
        text = undefined;
      }
    }
    if (text && looksLikeSvg(text)) {
      let clean: Buffer | undefined;
      try {
        clean = sanitizeSvg(text, 'fuzz.svg');
      } catch (err) {
        expectRefusal(err, { kinds: ['image'] });
      }
      if (clean) {
        const left = externalReferences(clean.toString('utf8'));
        invariant(left.length === 0, `the sanitised SVG still refers outside: ${left.slice(0, 3).join(' | ')}`);
      }
    }
    try {
      const img = await decodeImageRaw(data, { maxInputPixels: MAX_IMAGE_PIXELS, maxInputBytes: MAX_IMAGE_BYTES });
      invariant(img.data.length === img.width * img.height * img.channels, `${img.data.length} bytes for ${img.width}×${img.height}×${img.channels}`);
    } catch (err) {
      expectRefusal(err, { kinds: ['image'] });
    }
  },
};
