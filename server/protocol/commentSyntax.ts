/**
 * How a description is written as a comment in a language (by VS Code language id): the one table behind both
 * "Describe Image and Insert" (extension) and the "Insert description as comment" code action (server), so the same
 * file gets the same comment from either.
 */

export type CommentStyle = { line: string } | { block: [string, string] };

const STYLES: Record<string, CommentStyle> = {};
const line = (token: string, ids: string[]) => ids.forEach((id) => (STYLES[id] = { line: token }));
const block = (open: string, close: string, ids: string[]) => ids.forEach((id) => (STYLES[id] = { block: [open, close] }));

line('//', [
  'javascript', 'typescript', 'javascriptreact', 'typescriptreact', 'c', 'cpp', 'cuda-cpp', 'csharp', 'java', 'go', 'rust', 'swift',
  'kotlin', 'dart', 'php', 'scala', 'groovy', 'jsonc', 'objective-c', 'objective-cpp', 'fsharp', 'scss', 'less', 'zig', 'proto',
  'glsl', 'hlsl', 'wgsl',
]);
line('#', [
  'python', 'shellscript', 'ruby', 'perl', 'perl6', 'r', 'yaml', 'toml', 'dockerfile', 'makefile', 'powershell', 'julia', 'elixir',
  'coffeescript', 'nim', 'properties', 'cmake', 'nix', 'crystal', 'gdscript', 'starlark', 'graphql', 'terraform', 'hcl', 'tcl',
]);
line('--', ['sql', 'lua', 'haskell', 'elm', 'ada', 'purescript', 'plsql']);
line('%', ['latex', 'tex', 'bibtex', 'matlab', 'erlang', 'prolog']);
line(';', ['clojure', 'lisp', 'scheme', 'racket', 'ini', 'asm']);
line("'", ['vb']);
line('REM', ['bat']);
block('<!--', '-->', ['html', 'xml', 'xsl', 'svg', 'vue-html', 'markdown']);
block('/*', '*/', ['css']);

/** The language's comment style, or undefined when it is not in the table. */
export function commentStyle(languageId: string): CommentStyle | undefined {
  return STYLES[languageId.toLowerCase()];
}

/** Keeps a block comment's closing token out of the text. */
function escapeFor(style: CommentStyle, text: string): string {
  if (!('block' in style)) return text;
  return style.block[1] === '*/' ? text.replace(/\*\//g, '* /') : text.replace(/--/g, '- -');
}

/**
 * `lines` as a comment: one line comment per line (continuation lines indented by `indent`), or one block comment
 * (inline when it is a single line). Undefined when the language is not in the table.
 */
export function formatComment(languageId: string, lines: string[], indent = ''): string | undefined {
  const style = commentStyle(languageId);
  if (!style) return undefined;
  const body = lines.map((l) => escapeFor(style, l));
  if ('line' in style) return body.map((l, i) => `${i ? indent : ''}${style.line} ${l}`).join('\n');
  const [open, close] = style.block;
  return body.length === 1 ? `${open} ${body[0]} ${close}` : [open, ...body.map((l) => `${indent}  ${l}`), `${indent}${close}`].join('\n');
}

/** Words wrapped into lines of at most `width` characters (a longer word gets a line of its own). */
export function wrapText(text: string, width = 80): string[] {
  const out: string[] = [];
  for (const para of text.split(/\n+/)) {
    let current = '';
    for (const word of para.split(/\s+/).filter(Boolean)) {
      if (current && current.length + 1 + word.length > width) {
        out.push(current);
        current = word;
      } else current = current ? `${current} ${word}` : word;
    }
    if (current) out.push(current);
  }
  return out.length ? out : [''];
}
