import type { Command } from './command';

/** Every CLI subcommand, in the order `--help` lists them. */
export const commands: Command[] = [];
