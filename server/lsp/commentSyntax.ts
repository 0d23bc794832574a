/** How to write a one-line comment in a language (by VS Code language id). Unknown languages get `//`. */
export function lineComment(languageId: string, text: string): string {
  const id = languageId.toLowerCase();
  if (HASH.has(id)) return `# ${text}`;
  if (DASHES.has(id)) return `-- ${text}`;
  if (PERCENT.has(id)) return `% ${text}`;
  if (SEMICOLON.has(id)) return `; ${text}`;
  if (id === 'bat') return `REM ${text}`;
  if (id === 'vb') return `' ${text}`;
  if (BLOCK_C.has(id)) return `/* ${text.replace(/\*\//g, '* /')} */`;
  if (MARKUP.has(id)) return `<!-- ${text.replace(/--/g, '- -')} -->`;
  return `// ${text}`;
}

const HASH = new Set([
  'python', 'shellscript', 'ruby', 'perl', 'perl6', 'r', 'yaml', 'toml', 'dockerfile', 'makefile', 'powershell', 'julia', 'elixir',
  'coffeescript', 'nim', 'properties', 'cmake', 'nix', 'crystal', 'gdscript', 'starlark', 'jupyter', 'tcl',
]);
const DASHES = new Set(['sql', 'lua', 'haskell', 'elm', 'ada', 'purescript', 'plsql']);
const PERCENT = new Set(['latex', 'tex', 'bibtex', 'matlab', 'erlang', 'prolog']);
const SEMICOLON = new Set(['clojure', 'lisp', 'scheme', 'racket', 'ini', 'asm']);
const BLOCK_C = new Set(['css']);
const MARKUP = new Set(['html', 'xml', 'xsl', 'markdown', 'svg', 'vue-html']);
