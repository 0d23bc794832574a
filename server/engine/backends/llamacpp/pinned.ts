/**
 * The one llama.cpp build this backend speaks to. The npm packages `@node-llama-cpp/<platform>` at this version ship
 * llama.cpp's shared libraries (package.json pins the same version: test/sharedTables.test.ts checks it); the struct
 * layouts in structs.ts are written from this build's own `include/llama.h` (node-llama-cpp@3.21.1 carries the
 * source as `llama/gitRelease.bundle`, llama.cpp release v0.4.0), and the versions below are checked when the
 * library loads: a different build is refused, never called.
 */
export const LLAMA_PACKAGE_VERSION = '3.21.1';
/** `llama_version()` of that build, without a `-dev` suffix. */
export const LLAMA_LIBRARY_VERSION = '0.4.0';
/** `ggml_version()` of that build. */
export const GGML_LIBRARY_VERSION = '0.23.0';

/**
 * The library packages that can serve this process, best first. Each package holds the CPU libraries (every CPU
 * variant) besides its GPU backend, so one directory is loaded whole. CUDA packages (≈ 140 MB each) are not
 * installed by default (`npm run llama:cuda`).
 */
export function libraryPackages(platform: NodeJS.Platform = process.platform, arch: string = process.arch): string[] {
  const key = `${platform}-${arch}`;
  switch (key) {
    case 'linux-x64':
      return ['linux-x64-cuda', 'linux-x64-vulkan', 'linux-x64'];
    case 'linux-arm64':
      return ['linux-arm64'];
    case 'darwin-arm64':
      return ['mac-arm64-metal'];
    case 'darwin-x64':
      return ['mac-x64'];
    case 'win32-x64':
      return ['win-x64-cuda', 'win-x64-vulkan', 'win-x64'];
    default:
      return [];
  }
}
