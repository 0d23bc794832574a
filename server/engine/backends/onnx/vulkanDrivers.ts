import { existsSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Is there a Vulkan driver for Dawn (WebGPU on Linux) to find? Asked before a WebGPU session is created: on a
 * machine without one, Dawn and the Vulkan loader print raw warnings (with Dawn's build paths) straight to the
 * process's stderr, where no JavaScript can filter them, and then fail anyway. Checking the loader's own search
 * (its environment variables, else the standard manifest folders) first keeps the terminal and the log clean.
 */
export interface VulkanCheck {
  /** Why Dawn will find no Vulkan driver, or undefined when one may be there. */
  missing?: string;
}

/** Where Linux distributions put libvulkan.so.1 (a hint only: the loader may still be found elsewhere). */
export function vulkanLoaderFound(env: NodeJS.ProcessEnv = process.env): boolean {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib'];
  for (const d of (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean).concat(dirs)) {
    if (existsSync(`${d}/libvulkan.so.1`)) return true;
  }
  return false;
}

const list = (v: string | undefined): string[] => (v ?? '').split(':').filter(Boolean);

/** Driver manifests (ICD JSON files) the Vulkan loader would read, following its documented search order. */
export function vulkanDriverManifests(env: NodeJS.ProcessEnv = process.env): string[] {
  const manifests = (paths: string[]): string[] =>
    paths.flatMap((p) => {
      try {
        const st = statSync(p);
        if (st.isFile()) return [p];
        if (st.isDirectory()) return readdirSync(p).filter((f) => f.endsWith('.json')).map((f) => join(p, f));
      } catch {
        // absent: the loader skips it too
      }
      return [];
    });
  // VK_DRIVER_FILES (VK_ICD_FILENAMES before loader 1.3.207) replaces the search; VK_ADD_DRIVER_FILES adds to it.
  const replaced = env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES;
  if (replaced) return manifests([...list(replaced), ...list(env.VK_ADD_DRIVER_FILES)]);
  const home = env.HOME ?? homedir();
  const config = [env.XDG_CONFIG_HOME ?? join(home, '.config'), ...list(env.XDG_CONFIG_DIRS || '/etc/xdg'), '/usr/local/etc', '/etc'];
  const data = [env.XDG_DATA_HOME ?? join(home, '.local', 'share'), ...list(env.XDG_DATA_DIRS || '/usr/local/share:/usr/share')];
  return manifests([...list(env.VK_ADD_DRIVER_FILES), ...[...config, ...data].map((d) => join(d, 'vulkan', 'icd.d'))]);
}

/** Linux only (Dawn uses Metal on macOS and Direct3D 12 on Windows). */
export function checkVulkanDriver(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): VulkanCheck {
  if (platform !== 'linux') return {};
  if (!vulkanLoaderFound(env)) return { missing: "no Vulkan loader libvulkan.so.1 found: install libvulkan1 and the GPU vendor's Vulkan driver" };
  if (vulkanDriverManifests(env).length === 0) return { missing: "no Vulkan driver manifest in the Vulkan loader's icd.d folders: install the GPU vendor's Vulkan driver" };
  return {};
}

/** The WebGPU provider was not tried: Dawn would find no Vulkan driver (see checkVulkanDriver). */
export class NoVulkanDriverError extends Error {}
