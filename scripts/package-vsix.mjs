// Builds a platform-specific .vsix: `npm run package [-- --target linux-x64] [--no-model]`.
// The demo model (models/default, ≈ 7 MB) ships inside by default so that every feature works on first run; its
// autoregressive parent (models/default/ar, an evaluation baseline only) stays out.
// The bundles need no node_modules except the native addons (onnxruntime-node, sharp, koffi with llama.cpp's
// libraries), so those are staged for
// the one target with their runtime dependencies, and vsce packages the staged folder (its `npm list` then sees
// exactly those).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const hostTarget = `${process.platform}-${process.arch === 'arm' ? 'armhf' : process.arch}`;
const target = opt('--target') ?? process.env.VSIX_TARGET ?? hostTarget;
const embedModel = !args.includes('--no-model');
const [os, cpu0] = target.replace(/^alpine-/, 'linux-').split('-');
const cpu = cpu0 === 'armhf' ? 'arm' : cpu0;
const libc = target.startsWith('alpine-') ? 'musl' : 'glibc';
const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
// llama.cpp's prebuilt libraries for this target (CPU, and Vulkan or Metal where the platform has a package), loaded
// through koffi. CUDA stays out (its package alone is several times the rest of the .vsix; `npm run llama:cuda` and
// the README's packaging section say how to add it). Each package also carries node-llama-cpp's own addon (and its import library on Windows) and its
// `llama-common` helper library, which this backend never loads: they stay out too.
const llamaPrefix = `${{ linux: 'linux', darwin: 'mac', win32: 'win' }[os]}-${cpu}`;
const LLAMA = Object.keys(pkg.optionalDependencies ?? {}).filter((n) => n.startsWith(`@node-llama-cpp/${llamaPrefix}`) && !n.endsWith('-cuda'));
const NATIVE = ['onnxruntime-node', 'sharp', 'koffi', ...LLAMA];
const LLAMA_UNUSED = /^llama-addon\.(node|lib)$|^(lib)?llama-common\.(so|dylib|dll)$/;
// onnxruntime-node's other dependencies (adm-zip, global-agent, …) only serve its install script, which never runs
// from a .vsix: ship it with just its runtime dependency.
const RUNTIME_DEPS = { 'onnxruntime-node': ['onnxruntime-common'] };

const stage = path.join(repo, '.cache', 'vsix', target);
const outDir = path.join(repo, 'dist');
const out = path.join(outDir, `${pkg.name}-${target}-${pkg.version}.vsix`);
const log = (m) => console.log(`[package] ${m}`);

// 1) Fresh bundles (esbuild only; type checking is `npm run build`'s job).
execFileSync(process.execPath, [path.join(repo, 'scripts', 'bundle.mjs')], { cwd: repo, stdio: 'inherit' });
for (const f of ['dist/extension.js', 'dist/server.js']) {
  if (!fs.existsSync(path.join(repo, f))) throw new Error(`${f} is missing: the bundle step did not produce it`);
}

// 2) Where the native packages come from: this checkout for the host, else an install for the target platform.
let modules = path.join(repo, 'node_modules');
if (target !== hostTarget) {
  const foreign = path.join(repo, '.cache', 'vsix', `npm-${target}`);
  fs.mkdirSync(foreign, { recursive: true });
  // npm checks a direct dependency's `os`/`cpu` against this machine, not against --os/--cpu (EBADPLATFORM for
  // @node-llama-cpp/mac-*, win-*); optional dependencies are matched against the flags. So the llama.cpp packages go
  // in as optional ones, and their presence is checked below.
  const version = (n) => pkg.dependencies[n] ?? pkg.optionalDependencies[n];
  fs.writeFileSync(path.join(foreign, 'package.json'), JSON.stringify({
    private: true,
    dependencies: Object.fromEntries(NATIVE.filter((n) => !LLAMA.includes(n)).map((n) => [n, version(n)])),
    optionalDependencies: Object.fromEntries(LLAMA.map((n) => [n, version(n)])),
  }));
  log(`installing ${NATIVE.join(', ')} for ${target}`);
  execFileSync('npm', ['install', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', `--os=${os}`, `--cpu=${cpu}`, `--libc=${libc}`], { cwd: foreign, stdio: 'inherit' });
  modules = path.join(foreign, 'node_modules');
  const missing = NATIVE.filter((n) => !fs.existsSync(path.join(modules, n, 'package.json')));
  if (missing.length) throw new Error(`npm did not install ${missing.join(', ')} for ${target}`);
}

/** Runtime closure of a package: dependencies plus the optional ones built for this target. */
function closure(names, seen = new Set()) {
  for (const name of names) {
    if (seen.has(name)) continue;
    const dir = path.join(modules, name);
    const pj = path.join(dir, 'package.json');
    if (!fs.existsSync(pj)) continue; // an optional dependency for another platform
    const p = JSON.parse(fs.readFileSync(pj, 'utf8'));
    const fits = (list, v) => !list || list.includes(v) || (list.every((x) => x.startsWith('!')) && !list.includes(`!${v}`));
    if (!fits(p.os, os) || !fits(p.cpu, cpu) || (p.libc && !fits(p.libc, libc))) continue;
    seen.add(name);
    closure(RUNTIME_DEPS[name] ?? [...Object.keys(p.dependencies ?? {}), ...Object.keys(p.optionalDependencies ?? {})], seen);
  }
  return seen;
}

// 3) Stage.
fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(stage, { recursive: true });
const copy = (from, to = from, filter) => fs.cpSync(path.join(repo, from), path.join(stage, to), { recursive: true, filter });
for (const f of ['dist/extension.js', 'dist/server.js', 'dist/engineWorker.js', 'dist/convertWorker.js', 'CHANGELOG.md', 'LICENSE', 'media', '.vscodeignore']) {
  if (fs.existsSync(path.join(repo, f))) copy(f);
}
// The README's screenshots stay out of the package (size), so the packaged README goes without them.
const readme = fs.readFileSync(path.join(repo, 'README.md'), 'utf8').replace(/^!\[[^\]]*\]\(media\/screenshots\/[^)]*\)\n\n?/gm, '');
fs.writeFileSync(path.join(stage, 'README.md'), readme);
if (embedModel) {
  if (!fs.existsSync(path.join(repo, 'models/default/manifest.json'))) throw new Error('models/default is missing (npm run setup creates it; --no-model packages without it)');
  copy('models/default', 'models/default', (src) => path.relative(path.join(repo, 'models/default'), src).split(path.sep)[0] !== 'ar');
}
const onnxBin = path.join('onnxruntime-node', 'bin', 'napi-v6');
for (const name of closure(NATIVE)) {
  fs.cpSync(path.join(modules, name), path.join(stage, 'node_modules', name), {
    recursive: true,
    // onnxruntime-node ships every platform's binaries in one package: keep only this target's.
    filter: (src) => {
      const rel = path.relative(path.join(modules), src);
      if (name.startsWith('@node-llama-cpp/') && LLAMA_UNUSED.test(path.basename(src))) return false;
      if (!rel.startsWith(onnxBin + path.sep)) return true;
      const [plat, arch] = rel.slice(onnxBin.length + 1).split(path.sep);
      return plat === os && (arch === undefined || arch === cpu);
    },
  });
}
for (const [name, deps] of Object.entries(RUNTIME_DEPS)) {
  const pj = path.join(stage, 'node_modules', name, 'package.json');
  const p = JSON.parse(fs.readFileSync(pj, 'utf8'));
  p.dependencies = Object.fromEntries(deps.map((d) => [d, p.dependencies[d]]));
  delete p.scripts;
  fs.writeFileSync(pj, JSON.stringify(p, null, 2));
}
const manifest = { ...pkg };
for (const k of ['scripts', 'devDependencies', 'bin', 'private']) delete manifest[k];
manifest.dependencies = Object.fromEntries(NATIVE.filter((n) => fs.existsSync(path.join(stage, 'node_modules', n))).map((n) => [n, pkg.dependencies[n] ?? pkg.optionalDependencies[n]]));
delete manifest.optionalDependencies;
fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(manifest, null, 2));

// 4) vsce (installed with the e2e tools, or on its own into .cache/vsce).
const vsceVersion = JSON.parse(fs.readFileSync(path.join(repo, 'test', 'e2e', 'package.json'), 'utf8')).devDependencies['@vscode/vsce'];
let vsce = [path.join(repo, '.cache', 'e2e', 'node_modules', '@vscode', 'vsce', 'vsce'), path.join(repo, '.cache', 'vsce', 'node_modules', '@vscode', 'vsce', 'vsce')].find((p) => fs.existsSync(p));
if (!vsce) {
  log(`installing @vscode/vsce@${vsceVersion} into .cache/vsce`);
  fs.mkdirSync(path.join(repo, '.cache', 'vsce'), { recursive: true });
  execFileSync('npm', ['install', '--prefix', path.join(repo, '.cache', 'vsce'), '--no-save', '--no-audit', '--no-fund', `@vscode/vsce@${vsceVersion}`], { stdio: 'inherit' });
  vsce = path.join(repo, '.cache', 'vsce', 'node_modules', '@vscode', 'vsce', 'vsce');
}
fs.mkdirSync(outDir, { recursive: true });
execFileSync(process.execPath, [vsce, 'package', '--target', target, '--skip-license', '--allow-missing-repository', '--out', out], { cwd: stage, stdio: 'inherit' });
const mb = (n) => `${(n / 1048576).toFixed(1)} MB`;
log(`${path.relative(repo, out)} (${mb(fs.statSync(out).size)})`);
// What llama.cpp adds to the download: each library package's files, compressed in the .vsix and unpacked.
const perPackage = new Map();
for (const e of zipEntries(fs.readFileSync(out))) {
  const m = /^extension\/node_modules\/(@node-llama-cpp\/[^/]+)\//.exec(e.name);
  if (!m) continue;
  const t = perPackage.get(m[1]) ?? { packed: 0, unpacked: 0 };
  t.packed += e.compressedSize;
  t.unpacked += e.size;
  perPackage.set(m[1], t);
}
for (const [name, t] of perPackage) log(`  ${name}: ${mb(t.packed)} in the .vsix, ${mb(t.unpacked)} installed`);

/** Names and sizes from a zip's central directory (the .vsix vsce just wrote; no zip64 below 4 GB). */
function zipEntries(zip) {
  let eocd = zip.length - 22;
  while (eocd >= 0 && zip.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error(`${out} is not a zip archive`);
  const entries = [];
  for (let n = 0, at = zip.readUInt32LE(eocd + 16); n < zip.readUInt16LE(eocd + 10); n++) {
    const nameLen = zip.readUInt16LE(at + 28);
    entries.push({ name: zip.toString('utf8', at + 46, at + 46 + nameLen), compressedSize: zip.readUInt32LE(at + 20), size: zip.readUInt32LE(at + 24) });
    at += 46 + nameLen + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
  }
  return entries;
}
