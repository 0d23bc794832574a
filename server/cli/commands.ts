import type { Command } from './command';
import { askCommand } from './commands/ask';
import { convertCommand } from './commands/convert';
import { evalSyntheticCommand } from './commands/evalSynthetic';
import { generateCommand } from './commands/generate';
import { inspectImageCommand } from './commands/inspectImage';
import { mcpCommand } from './commands/mcp';
import { serveCommand } from './commands/serve';

/** Every CLI subcommand, in the order `--help` lists them. */
export const commands: Command[] = [askCommand, generateCommand, convertCommand, inspectImageCommand, evalSyntheticCommand, serveCommand, mcpCommand];
