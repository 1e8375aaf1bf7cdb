// The one POST both formats make, Slack's included: no redirects followed, a bounded answer,
// every failure a value, and never the URL in a message (a webhook URL is a credential).

import axios, { type AxiosInstance } from 'axios';
import { CODE_WORDS } from '../api/error-words.ts';

const DEFAULT_TIMEOUT_MS = 10_000;

/** Only this much of an answer is kept: Slack's are a word, and anything else is not read. */
const KEPT_BODY_CHARS = 1024;

/** A receiver that answers with more than this is cut off (and the attempt retried). */
const MAX_ANSWER_BYTES = 64 * 1024;

/** Statuses that say "not now": the request may succeed later unchanged. */
export function isTransient(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** What one POST came to: an answer of any status, or no answer. */
export type PostResult =
  | { answered: true; status: number; body: string; retryAfterMs: number | undefined }
  | { answered: false; retry: 'later' | 'never'; problem: string };

/** One receiver: its URL (a credential, never printed), how messages name it, and the POST made to it. */
export class JsonEndpoint {
  private readonly url: string;
  /** How messages name the receiver, never by its URL: "Slack", "the webhook". */
  private readonly who: string;
  private readonly timeoutMs: number;
  private readonly http: AxiosInstance;

  constructor(url: string, who: string, timeoutMs = DEFAULT_TIMEOUT_MS) {
    this.url = url;
    this.who = who;
    this.timeoutMs = timeoutMs;
    this.http = jsonClient(timeoutMs);
  }

  post(document: unknown, signal: AbortSignal, headers: Readonly<Record<string, string>> = {}): Promise<PostResult> {
    return postJson(this.http, { url: this.url, body: JSON.stringify(document), headers, signal, timeoutMs: this.timeoutMs, who: this.who });
  }
}

interface PostRequest {
  url: string;
  body: string;
  headers: Readonly<Record<string, string>>;
  signal: AbortSignal;
  timeoutMs: number;
  who: string;
}

function jsonClient(timeoutMs: number): AxiosInstance {
  return axios.create({
    timeout: timeoutMs,
    // A redirect is answered as it is: a webhook that moved is fixed in its Secret, not followed.
    maxRedirects: 0,
    maxContentLength: MAX_ANSWER_BYTES,
    // Every status and body is ours to judge; axios only carries bytes.
    validateStatus: () => true,
    transformResponse: (body: unknown) => body,
    responseType: 'text',
  });
}

const NEVER_ERRORS = new Set(['ERR_INVALID_URL', 'ERR_BAD_REQUEST']);

async function postJson(http: AxiosInstance, request: PostRequest): Promise<PostResult> {
  // axios's own timeout covers a silent socket; this one also covers an answer that trickles in.
  const deadline = AbortSignal.timeout(request.timeoutMs);
  let response;
  try {
    response = await http.post<string>(request.url, request.body, {
      headers: { ...request.headers, 'Content-Type': 'application/json' },
      signal: AbortSignal.any([request.signal, deadline]),
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const timedOut = deadline.aborted || code === 'ECONNABORTED' || code === 'ETIMEDOUT';
    if (timedOut) return { answered: false, retry: 'later', problem: `no answer from ${request.who} within ${request.timeoutMs} ms` };
    if (request.signal.aborted) return { answered: false, retry: 'later', problem: `the request to ${request.who} was cancelled` };
    // Error messages may quote the address; only the code is repeated.
    if (typeof code === 'string' && NEVER_ERRORS.has(code)) return { answered: false, retry: 'never', problem: `${request.who}'s URL is not a usable http(s) URL (${code}); fix the Secret that holds it` };
    if (axios.isAxiosError(error) && error.message.startsWith('maxContentLength')) return { answered: false, retry: 'later', problem: `${request.who} answered with more than ${MAX_ANSWER_BYTES / 1024} KiB` };
    return { answered: false, retry: 'later', problem: `cannot reach ${request.who}: ${typeof code === 'string' ? (NETWORK_WORDS[code] ?? code) : (error as Error).name}` };
  }
  const body = typeof response.data === 'string' ? response.data.slice(0, KEPT_BODY_CHARS) : '';
  return { answered: true, status: response.status, body, retryAfterMs: parseRetryAfter(response.headers['retry-after'], Date.now()) };
}

/** Retry-After in milliseconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or unreadable. */
function parseRetryAfter(value: unknown, now: number): number | undefined {
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Network failures in words, as the commands say them, with what a controller should check for a host. */
const NETWORK_WORDS: Partial<Record<string, string>> = {
  ...CODE_WORDS,
  ENOTFOUND: 'no such host (check the URL\'s host name, and DNS from the controller\'s network)',
  EAI_AGAIN: 'the host name could not be resolved now (DNS)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is self-signed',
};
