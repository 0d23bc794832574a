import assert from 'node:assert/strict';
import { test } from 'node:test';
import { candidatePaths, findImageRefs, needsAltText, refAt } from '../server/lsp/imageRefs';

test('markdown images: alt spans, angle-bracket paths, titles; remote images are skipped', () => {
  const text = 'a ![](img/a.png) b ![Logo](<my pics/b.jpg> "t") ![x](https://e.com/c.png) ![d](data:image/png;base64,AAA)';
  const refs = findImageRefs(text, 'markdown');
  assert.deepEqual(refs.map((r) => r.target), ['img/a.png', 'my pics/b.jpg']);
  assert.equal(refs[0].alt?.text, '');
  assert.equal(text.slice(refs[0].alt!.start, refs[0].alt!.end), '');
  assert.equal(refs[0].alt!.start, text.indexOf('![](') + 2);
  assert.equal(text.slice(refs[1].alt!.start, refs[1].alt!.end), 'Logo');
  assert.equal(text.slice(refs[0].start, refs[0].end), '![](img/a.png)');
  assert.ok(needsAltText(refs[0]));
  assert.ok(!needsAltText(refs[1]));
});

test('html img: src and alt attribute spans, missing alt gets an insertion point', () => {
  const text = '<p><img src="a.png"> <IMG alt="" SRC=\'b.gif\' /> <img alt="ok" src=c.webp></p>';
  const refs = findImageRefs(text, 'html');
  assert.deepEqual(refs.map((r) => r.target), ['a.png', 'b.gif', 'c.webp']);
  assert.equal(refs[0].alt, undefined);
  assert.equal(refs[0].altInsertAt, text.indexOf('<img') + 4);
  assert.equal(text.slice(refs[1].alt!.start, refs[1].alt!.end), 'alt=""');
  assert.deepEqual([needsAltText(refs[0]), needsAltText(refs[1]), needsAltText(refs[2])], [true, true, false]);
});

test('reference-style markdown images: full, collapsed and shortcut forms, and the definition line', () => {
  const text = [
    'Flow: ![][flow] and ![Chart][c] and ![Logo][] and ![logo] and ![none][missing] and [not an image][flow].',
    '',
    '[Flow]: images/flow.png',
    '  [c]: <charts/bar chart.png> "Sales"',
    '[logo]: logo.svg',
    '[site]: https://example.com/x.png',
    '[flow]: ignored-second-definition.png',
  ].join('\n');
  const refs = findImageRefs(text, 'markdown');
  const usages = refs.filter((r) => !r.definition);
  assert.deepEqual(usages.map((r) => `${text.slice(r.start, r.end)} -> ${r.target}`), [
    '![][flow] -> images/flow.png',
    '![Chart][c] -> charts/bar chart.png',
    '![Logo][] -> logo.svg',
    '![logo] -> logo.svg',
  ]);
  // Only the full form with empty alt text needs it; collapsed and shortcut forms use their label as alt text.
  assert.deepEqual(usages.map(needsAltText), [true, false, false, false]);
  assert.equal(usages[0].alt!.start, text.indexOf('![][flow]') + 2);
  const defs = refs.filter((r) => r.definition);
  assert.deepEqual(defs.map((r) => text.slice(r.start, r.end)), ['images/flow.png', 'charts/bar chart.png', 'logo.svg']);
  assert.ok(defs.every((d) => !needsAltText(d)));
  // Hovering the definition's path finds the definition.
  assert.equal(refAt(refs, text.indexOf('images/flow.png') + 3)?.definition, true);
});

test('html inside markdown is found too', () => {
  const refs = findImageRefs('# T\n\n<img src="x.png">\n![y](y.png)\n', 'markdown');
  assert.deepEqual(refs.map((r) => `${r.kind}:${r.target}`), ['html:x.png', 'markdown:y.png']);
});

test('code: string literals and bare paths in comments, not URLs or templates', () => {
  const text = [
    "const a = require('./assets/logo.png');",
    '// see docs/arch.svg for the layout',
    'img = "C:\\\\pics\\\\x.jpeg"',
    'url = "https://x.org/a.png"',
    'tpl = `${dir}/a.png`',
    "name = 'notes.txt'",
  ].join('\n');
  const refs = findImageRefs(text, 'typescript');
  assert.deepEqual(refs.map((r) => r.target), ['./assets/logo.png', 'docs/arch.svg', 'C:\\pics\\x.jpeg']);
});

test('refAt picks the reference under the cursor, inclusive of its end', () => {
  const text = 'x ![](a.png) y';
  const refs = findImageRefs(text, 'markdown');
  assert.equal(refAt(refs, text.indexOf('a.png'))?.target, 'a.png');
  assert.equal(refAt(refs, text.indexOf(')') + 1)?.target, 'a.png');
  assert.equal(refAt(refs, 0), undefined);
});

test('candidatePaths resolves relative to the document, decodes escapes, drops queries', () => {
  assert.deepEqual(candidatePaths('img/a%20b.png?raw=1#x', '/ws/docs/readme.md', '/ws'), ['/ws/docs/img/a b.png']);
  assert.deepEqual(candidatePaths('/assets/a.png', '/ws/docs/readme.md', '/ws'), ['/ws/assets/a.png', '/assets/a.png']);
  assert.deepEqual(candidatePaths('../../etc/x.png', '/ws/docs/readme.md', '/ws'), ['/etc/x.png']);
  assert.deepEqual(candidatePaths('https://e.com/a.png', '/ws/r.md', '/ws'), []);
  assert.deepEqual(candidatePaths('file:///ws/a.png', '/ws/r.md', '/ws'), ['/ws/a.png']);
  assert.deepEqual(candidatePaths('~/a.png', '/ws/r.md', '/ws'), []);
});
