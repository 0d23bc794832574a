import type { ExecutionProvider } from './api';

/**
 * Execution-provider choice. A GPU provider that cannot start falls back to CPU and the reason is reported in
 * EngineInfo: never silently.
 */
export type ConcreteProvider = Exclude<ExecutionProvider, 'auto'>;

/** Providers to try, in order; CPU is always last. 'auto' tries the platform's usual GPU provider first. */
export function providerCandidates(requested: ExecutionProvider, platform: NodeJS.Platform = process.platform): ConcreteProvider[] {
  if (requested === 'cpu') return ['cpu'];
  if (requested !== 'auto') return [requested, 'cpu'];
  const gpu: Record<string, ConcreteProvider> = { win32: 'dml', darwin: 'coreml', linux: 'cuda' };
  const first = gpu[platform];
  return first ? [first, 'cpu'] : ['cpu'];
}

export interface ProviderChoice<T> {
  provider: ConcreteProvider;
  reason: string;
  value: T;
}

/**
 * Runs `create` with each candidate until one succeeds. The reason names every provider that failed and why, or
 * says the requested one is in use.
 */
export async function withFallback<T>(
  requested: ExecutionProvider,
  create: (provider: ConcreteProvider) => Promise<T>,
  platform: NodeJS.Platform = process.platform,
): Promise<ProviderChoice<T>> {
  const failures: string[] = [];
  for (const provider of providerCandidates(requested, platform)) {
    try {
      const value = await create(provider);
      const reason = failures.length
        ? `${failures.join('; ')}; fell back to ${provider}`
        : requested === 'auto'
          ? `auto: ${provider} selected`
          : `${provider} requested`;
      return { provider, reason, value };
    } catch (err) {
      if (provider === 'cpu') throw err;
      failures.push(`${provider} unavailable: ${firstLine(err)}`);
    }
  }
  throw new Error(failures.join('; '));
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0].slice(0, 300);
}
