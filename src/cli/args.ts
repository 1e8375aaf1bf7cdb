import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { EXIT, type Io } from './io.ts';

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

type Parsed<O extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<{ args: string[]; options: O & typeof HELP; allowPositionals: true }>>;

/**
 * A command's flags and positionals, or the exit code when there is nothing more to do: the
 * usage was asked for (0), or the flags are wrong (2, with the usage on stderr).
 */
export function parseCommand<O extends ParseArgsOptionsConfig>(command: string, args: string[], options: O, usage: string, io: Io): Parsed<O> | number {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args, options: { ...options, ...HELP }, allowPositionals: true });
  } catch (error) {
    io.stderr.write(`modelcanary ${command}: ${(error as Error).message}\n\n${usage}`);
    return EXIT.unreadable;
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    io.stdout.write(usage);
    return EXIT.ok;
  }
  return parsed;
}
