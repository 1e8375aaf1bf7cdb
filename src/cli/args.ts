import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { closest } from '../api/suggest.ts';
import { EXIT, type Io } from './io.ts';

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

type Parsed<O extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<{ args: string[]; options: O & typeof HELP; allowPositionals: true }>>;

/**
 * A command's flags and positionals, or the exit code when there is nothing more to do: the
 * usage was asked for (0, the usage on stdout), or the flags are wrong (2, one line on stderr
 * that names the flag and points at --help).
 */
export function parseCommand<O extends ParseArgsOptionsConfig>(command: string, args: string[], options: O, usage: string, io: Io): Parsed<O> | number {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args, options: { ...options, ...HELP }, allowPositionals: true });
  } catch (error) {
    io.stderr.write(`modelcanary ${command}: ${flagProblem(error, Object.keys(options))}; see modelcanary ${command} --help\n`);
    return EXIT.unreadable;
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    io.stdout.write(usage);
    return EXIT.ok;
  }
  return parsed;
}

/** True when the arguments ask for help (-h or --help before a `--` that ends the flags). */
export function asksForHelp(args: readonly string[]): boolean {
  for (const arg of args) {
    if (arg === '--') return false;
    if (arg === '-h' || arg === '--help') return true;
  }
  return false;
}

/**
 * What parseArgs found wrong, in our words. Its messages are written for programmers ("To
 * specify a positional argument starting with a '-', place it at the end…"); a person needs the
 * flag, what is wrong with it, and the likely flag they meant.
 */
export function flagProblem(error: unknown, known: readonly string[]): string {
  const { code, message } = error as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : String(error);
  const flag = /'(-[^' ]*)/.exec(text)?.[1] ?? '';
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const name = flag.replace(/^-+/, '').split('=')[0] ?? '';
    const guess = flag.startsWith('--') ? closest(name, [...known, 'help']) : undefined;
    return `unknown option ${flag}${guess === undefined ? '' : ` (did you mean --${guess}?)`}`;
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (text.includes('argument missing')) return `${flag} needs a value`;
    if (text.includes('does not take an argument')) return `${flag} takes no value`;
    if (text.includes('argument is ambiguous')) return `${flag} needs a value, and the next argument looks like a flag (write ${flag}=VALUE if the value starts with -)`;
  }
  return text.split('\n')[0] ?? text;
}
