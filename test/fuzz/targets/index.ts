import type { FuzzTarget } from '../target';

/** Every fuzz target, named for `npm run fuzz`; each module is loaded only when its target runs. */
export const TARGETS: { name: string; description: string; module: string }[] = [
  { name: 'safetensors-header', description: 'a .safetensors file: header length, JSON header, tensor spans, tensor reads', module: './safetensors' },
  { name: 'shard-index', description: 'model.safetensors.index.json (weight_map) against the shards it names', module: './shardIndex' },
  { name: 'qwenvl-config', description: 'config.json, vision_config.json and preprocessor_config.json of a DiffusionVL-QwenVL checkpoint', module: './qwenvlConfig' },
  { name: 'siglip-config', description: 'config.json of a DiffusionVL-Qwen (SigLIP) checkpoint and its tower config.json', module: './siglipConfig' },
  { name: 'tokenizer', description: 'tokenizer.json and tokenizer_config.json of a converted model', module: './tokenizer' },
  { name: 'gguf', description: "a model folder's GGUF decoder, checked before llama.cpp may load it", module: './gguf' },
  { name: 'manifest', description: "a converted model's manifest.json and its embedding table", module: './manifest' },
  { name: 'bmp', description: 'the BMP decoder', module: './bmp' },
  { name: 'svg', description: 'SVG input: sanitising (external references, entities) and rasterising, sizes', module: './svg' },
  { name: 'image', description: 'the image path as a whole: sharp decode, limits, resize (both architectures)', module: './image' },
  { name: 'lsp-params', description: 'params of every LSP request, sent to a running sidecar', module: './lspParams' },
  { name: 'mcp-args', description: 'MCP tool arguments, sent to the MCP server by an MCP client', module: './mcpArgs' },
  { name: 'http-body', description: 'request bodies of the OpenAI-compatible HTTP server (serve --http), sent over loopback', module: './httpBody' },
];

export function loadTarget(name: string): { name: string; fuzz: FuzzTarget } {
  const entry = TARGETS.find((t) => t.name === name);
  if (!entry) throw new Error(`no fuzz target ${name}`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(entry.module) as { target: FuzzTarget };
  return { name, fuzz: mod.target };
}
