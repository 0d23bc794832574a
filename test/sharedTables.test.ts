import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { DECODER_BACKENDS, DEFAULT_BACKEND, DEFAULT_PROVIDER } from '../server/engine/api';
import { checkGenerationOptions, DEFAULT_STRATEGY, GENERATION_OPTIONS, parseVerifySteps, REMASKING_STRATEGIES, VERIFY_STEPS } from '../server/engine/generationOptions';
import { resolveOptions } from '../server/engine/options';
import { errorKind } from '../server/engine/errors';
import { DEFAULT_SETTINGS } from '../server/lsp/settings';
import { formatComment, wrapText } from '../server/protocol/commentSyntax';
import { hasImageExtension, IMAGE_FILE_EXTENSIONS } from '../server/protocol/imageFiles';
import { findImageRefs } from '../server/lsp/imageRefs';
import { repoRoot } from './helpers/paths';

interface ConfigProperty {
  type: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  enum?: string[];
}
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  contributes: {
    configuration: { properties: Record<string, ConfigProperty> };
    menus: Record<string, { command: string; when?: string }[]>;
  };
};
const props = pkg.contributes.configuration.properties;

test("package.json's generation settings carry the engine's defaults and limits", () => {
  // setting name → option in GENERATION_OPTIONS
  for (const [setting, option] of [
    ['diffusionvl.steps', 'steps'],
    ['diffusionvl.maxNewTokens', 'maxNewTokens'],
    ['diffusionvl.confidenceThreshold', 'threshold'],
  ] as const) {
    const p = props[setting];
    const rule = GENERATION_OPTIONS[option];
    assert.ok(p, `${setting} is contributed`);
    assert.equal(p.default, rule.default, `${setting} default`);
    assert.equal(p.minimum, rule.min, `${setting} minimum`);
    assert.equal(p.maximum, rule.max, `${setting} maximum`);
    assert.equal(p.type, rule.integer ? 'integer' : 'number', `${setting} type`);
  }
  assert.deepEqual(props['diffusionvl.remasking'].enum, [...REMASKING_STRATEGIES]);
  assert.equal(props['diffusionvl.verifySteps'].default, VERIFY_STEPS.default);
  for (const v of props['diffusionvl.verifySteps'].enum as string[]) assert.doesNotThrow(() => parseVerifySteps(v), v);
  assert.equal(props['diffusionvl.remasking'].default, DEFAULT_STRATEGY);
});

test("package.json's server settings carry the server's and the engine's defaults", () => {
  assert.equal(props['diffusionvl.executionProvider'].default, DEFAULT_PROVIDER);
  assert.equal(props['diffusionvl.backend'].default, DEFAULT_BACKEND);
  assert.deepEqual(props['diffusionvl.backend'].enum, [...DECODER_BACKENDS]);
  assert.equal(props['diffusionvl.idleUnloadMinutes'].default, DEFAULT_SETTINGS.idleUnloadMinutes);
  assert.equal(props['diffusionvl.hover.enabled'].default, DEFAULT_SETTINGS.hover.enabled);
  assert.equal(props['diffusionvl.modelPath'].default, '');
});

test('topP: 0 is an options error in the engine, the wire check and the CLI alike', async () => {
  assert.throws(() => resolveOptions({ topP: 0 }, 8), (e: Error) => errorKind(e) === 'options' && /^topP must be a number in \(0, 1\]/.test(e.message));
  assert.throws(() => checkGenerationOptions({ topP: 0 }), (e: Error) => errorKind(e) === 'options' && /^topP must be a number in \(0, 1\]/.test(e.message));
  assert.deepEqual(checkGenerationOptions({ topP: 1, steps: GENERATION_OPTIONS.steps.max }), { topP: 1, steps: GENERATION_OPTIONS.steps.max });
  // The CLI refuses it before loading any model (exit 2, a usage error naming the flag and the rule).
  const cli = join(repoRoot, 'out', 'server', 'cli', 'main.js');
  await assert.rejects(promisify(execFile)(process.execPath, [cli, 'generate', '--model', repoRoot, '--prompt-ids', '[1]', '--top-p', '0']), (e: { code: number; stderr: string }) => {
    assert.equal(e.code, 2);
    assert.match(e.stderr, /--top-p must be a number in \(0, 1\], got "0"/);
    return true;
  });
  const maxTokens = GENERATION_OPTIONS.maxNewTokens.max + 1;
  await assert.rejects(promisify(execFile)(process.execPath, [cli, 'ask', 'x.png', 'q', '--max-tokens', String(maxTokens)]), (e: { code: number; stderr: string }) => {
    assert.equal(e.code, 2);
    assert.match(e.stderr, new RegExp(`--max-tokens must be an integer in \\[1, ${GENERATION_OPTIONS.maxNewTokens.max}\\], got "${maxTokens}"`));
    return true;
  });
});

test("package.json's image menus offer exactly the shared image extensions", () => {
  const whens = Object.values(pkg.contributes.menus)
    .flat()
    .map((m) => m.when ?? '')
    .filter((w) => w.includes('resourceExtname'));
  assert.ok(whens.length >= 3, 'explorer and editor-title menus use an extension clause');
  for (const when of whens) {
    const source = /resourceExtname =~ \/(.+)\/i/.exec(when)?.[1];
    assert.ok(source, when);
    const re = new RegExp(source, 'i');
    for (const ext of IMAGE_FILE_EXTENSIONS) assert.ok(re.test(`.${ext}`), `${when} offers .${ext}`);
    for (const ext of ['txt', 'pdf', 'pngx', 'svgzz', 'ts']) assert.ok(!re.test(`.${ext}`), `${when} refuses .${ext}`);
  }
  assert.ok(hasImageExtension('/a/B.JPEG') && hasImageExtension('x.svgz') && !hasImageExtension('x.png.txt'));
  // The server finds references by the same list.
  for (const ext of IMAGE_FILE_EXTENSIONS) assert.equal(findImageRefs(`see "pic.${ext}"`, 'python').length, 1, ext);
});

test('comment syntax: one table for line and block comments, closing tokens kept out of the text', () => {
  assert.equal(formatComment('python', ['a', 'b'], '  '), '# a\n  # b');
  assert.equal(formatComment('graphql', ['a']), '# a');
  assert.equal(formatComment('css', ['a */ b']), '/* a * / b */');
  assert.equal(formatComment('html', ['a -- b', 'c'], ''), '<!--\n  a - - b\n  c\n-->');
  assert.equal(formatComment('bat', ['a']), 'REM a');
  assert.equal(formatComment('no-such-language', ['a']), undefined);
  assert.deepEqual(wrapText('one two three', 7), ['one two', 'three']);
});
