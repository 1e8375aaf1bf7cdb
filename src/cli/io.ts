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

/**
 * Node's error codes in words, for every command in one place: a person reads "no such file or
 * directory", never ENOENT. File system codes, then network codes (Node's, undici's and axios's).
 */
const CODE_WORDS: Partial<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'too many symbolic links in the path',
  EEXIST: 'it already exists',
  EBUSY: 'it is busy or locked',
  ECONNREFUSED: 'the connection was refused (nothing listens at that address and port)',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved now (DNS did not answer)',
  ETIMEDOUT: 'the connection timed out',
  ECONNABORTED: 'no answer in time',
  ERR_SOCKET_CONNECTION_TIMEOUT: 'the connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  ECONNRESET: 'the connection was reset',
  EPIPE: 'the connection was closed',
  UND_ERR_SOCKET: 'the connection was closed',
  EHOSTUNREACH: 'the host is unreachable from here',
  ENETUNREACH: 'the network is unreachable from here',
  EADDRINUSE: 'the address is already in use',
  EADDRNOTAVAIL: 'the address is not available on this machine',
  ERR_INVALID_URL: 'not a valid URL',
  CERT_HAS_EXPIRED: 'its TLS certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is self-signed (not trusted)',
  SELF_SIGNED_CERT_IN_CHAIN: 'its TLS certificate chain is self-signed (not trusted)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its TLS certificate cannot be verified',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its TLS certificate is issued by an authority this machine does not trust',
  ERR_TLS_CERT_ALTNAME_INVALID: "its TLS certificate is for another host name",
  EPROTO: 'the TLS handshake failed (an http:// server at an https:// address?)',
};

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
