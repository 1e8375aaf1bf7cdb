import { CODE_WORDS } from '../api/error-words.ts';

/** What a command may touch of its process: handed in so that tests run commands in-process. */
export interface Io {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  stdin: AsyncIterable<string | Buffer>;
  cwd: string;
}

/**
 * Exit codes shared by every command, as the global help documents them: 0 it worked, 1 it ran
 * and judged something bad (an invalid spec, a rollback, a refused request), 2 it could not run
 * (bad usage, a missing or unreadable file, an address that cannot be reached).
 */
export const EXIT = { ok: 0, invalid: 1, unreadable: 2 } as const;

/** Codes that mean the other end could not be reached (as opposed to a file problem). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_SOCKET']);

/**
 * The string code of an error, or of the first error in its cause chain that has one: fetch
 * wraps the socket's error ("fetch failed", cause ECONNREFUSED), and a connection tried on
 * several addresses fails with an AggregateError of them.
 */
export function errorCode(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0) {
    const current = queue.shift();
    if (typeof current !== 'object' || current === null || seen.has(current)) continue;
    seen.add(current);
    const { code, cause, errors } = current as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === 'string' && code !== '') return code;
    queue.push(cause);
    if (Array.isArray(errors)) queue.push(...(errors as unknown[]));
  }
  return undefined;
}

/** Words for a code, or undefined for a code this table does not know. */
export function codeWords(code: string | undefined): string | undefined {
  return code === undefined ? undefined : CODE_WORDS[code];
}

/** True when the error says the other end could not be reached, not that it answered badly. */
export function isUnreachable(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && UNREACHABLE.has(code);
}

/**
 * An error in one line for a person: the words for its code when it has one, else the first
 * line of its message with any leading "ECODE: " taken off. Never a stack.
 */
export function describeError(error: unknown): string {
  const words = codeWords(errorCode(error));
  if (words !== undefined) return words;
  const message = error instanceof Error ? error.message : String(error);
  // fetch says only "fetch failed" and keeps the reason in its cause.
  const { cause } = error as { cause?: unknown };
  if (message === 'fetch failed' && cause instanceof Error) return `the connection failed: ${describeError(cause)}`;
  const line = (message.split('\n')[0] ?? '').trim();
  // Node's file errors read "EBUSY: resource busy or locked, open 'x'": keep the words.
  const coded = /^[A-Z][A-Z0-9_]+: (.+?)(?:, \w+ '.*')?$/.exec(line);
  if (coded?.[1] !== undefined) return coded[1];
  return line === '' ? (error instanceof Error ? error.name : 'failed') : line;
}
