// The generic JSON webhook: our own document (apiVersion modelcanary.io/notification/v1), for
// receivers that are programs rather than people. Also the one POST that both formats make,
// Slack's included: no redirects followed, a bounded answer, every failure a value, and never
// the URL in a message (a webhook URL is a credential).

import axios, { type AxiosInstance } from 'axios';
import type { Notification } from '../api/status.ts';
import type { Delivery, Links, Notifier } from './notifier.ts';

export const WEBHOOK_API_VERSION = 'modelcanary.io/notification/v1';

export interface WebhookMetric {
  name: string;
  verdict: string;
  stable: string;
  canary: string;
  stableValue: number | null;
  canaryValue: number | null;
  bound: string;
  reason: string;
}

export interface WebhookBody {
  apiVersion: typeof WEBHOOK_API_VERSION;
  kind: 'ModelCanaryNotification';
  id: string;
  event: Notification['kind'];
  severity: Notification['severity'];
  time: string;
  modelCanary: { namespace: string; name: string };
  model: string;
  stable: { version: string };
  canary: { version: string; weight: number };
  step: { number: number; of: number };
  phase: Notification['phase'];
  summary: string;
  reason: string;
  metrics: WebhookMetric[];
  links: { dashboard?: string; kubectl: string };
}

/** The notification as the generic webhook sends it: plain strings, for JSON consumers (nothing escaped). */
export function webhookBody(n: Notification, links?: Links): WebhookBody {
  const dashboard = dashboardUrl(links, n);
  return {
    apiVersion: WEBHOOK_API_VERSION,
    kind: 'ModelCanaryNotification',
    id: n.id,
    event: n.kind,
    severity: n.severity,
    time: n.time,
    modelCanary: { namespace: n.namespace, name: n.name },
    model: n.model,
    stable: { version: n.stableVersion },
    canary: { version: n.canaryVersion, weight: n.weight },
    step: { number: n.step, of: n.steps },
    phase: n.phase,
    summary: n.summary,
    reason: n.reason,
    metrics: n.metrics.map((m) => ({
      name: m.name,
      verdict: m.verdict,
      stable: m.stable,
      canary: m.canary,
      stableValue: m.stableValue ?? null,
      canaryValue: m.canaryValue ?? null,
      bound: m.bound,
      reason: m.reason,
    })),
    links: dashboard === undefined ? { kubectl: kubectlCommand(n) } : { dashboard, kubectl: kubectlCommand(n) },
  };
}

/**
 * The operator's dashboard template with {{namespace}}, {{name}} and {{model}} filled in, each
 * URL-encoded; undefined without a template, or when the result is not an http(s) URL.
 */
export function dashboardUrl(links: Links | undefined, n: Pick<Notification, 'namespace' | 'name' | 'model'>): string | undefined {
  if (links?.dashboard === undefined) return undefined;
  const values = { namespace: n.namespace, name: n.name, model: n.model };
  const url = links.dashboard.replace(/\{\{\s*(namespace|name|model)\s*\}\}/g, (_, key: keyof typeof values) => encodeURIComponent(values[key]));
  if (!URL.canParse(url)) return undefined;
  const { protocol } = new URL(url);
  return protocol === 'http:' || protocol === 'https:' ? url : undefined;
}

export function kubectlCommand(n: Pick<Notification, 'namespace' | 'name'>): string {
  return `kubectl describe modelcanary ${n.name} -n ${n.namespace}`;
}

export interface WebhookNotifierOptions {
  url: string;
  links?: Links | undefined;
  timeoutMs?: number | undefined;
}

export class WebhookNotifier implements Notifier {
  private readonly url: string;
  private readonly links: Links | undefined;
  private readonly timeoutMs: number;
  private readonly http: AxiosInstance;

  constructor(options: WebhookNotifierOptions) {
    this.url = options.url;
    this.links = options.links;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.http = jsonClient(this.timeoutMs);
  }

  async send(notification: Notification, signal: AbortSignal): Promise<Delivery> {
    const body = JSON.stringify(webhookBody(notification, this.links));
    const result = await postJson(this.http, { url: this.url, body, headers: { 'Idempotency-Key': notification.id }, signal, timeoutMs: this.timeoutMs, who: 'the webhook' });
    return judgeWebhookAnswer(result);
  }
}

/** How a receiver's answer reads: 2xx delivered; what may pass (408, 425, 429, 5xx) later; any other refusal is for a person to fix. */
function judgeWebhookAnswer(result: PostResult): Delivery {
  if (!result.answered) return { ok: false, retry: result.retry, problem: result.problem };
  const { status, retryAfterMs } = result;
  if (status >= 200 && status < 300) return { ok: true };
  if (isTransient(status)) return { ok: false, retry: 'later', problem: `the webhook answered ${status}`, retryAfterMs };
  return { ok: false, retry: 'never', problem: `the webhook answered ${status}: ${webhookFix(status)}` };
}

function webhookFix(status: number): string {
  if (status >= 300 && status < 400) return 'a redirect, which is not followed; put the final URL in the Secret';
  if (status === 401 || status === 403) return 'it refused the request; check the URL (and any token in it) in the Secret';
  if (status === 404 || status === 410) return 'nothing receives notifications at that URL; check the URL in the Secret';
  if (status === 413) return 'the notification is too large for the receiver; raise its request size limit';
  return `it refused the notification; check what the receiver expects (a POST of JSON, apiVersion ${WEBHOOK_API_VERSION})`;
}

// ── The POST both formats make ──────────────────────────────────────────────────────────

export const DEFAULT_TIMEOUT_MS = 10_000;

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

export interface PostRequest {
  url: string;
  body: string;
  headers?: Readonly<Record<string, string>>;
  signal: AbortSignal;
  timeoutMs: number;
  /** How messages name the receiver, never by its URL: "Slack", "the webhook". */
  who: string;
}

export function jsonClient(timeoutMs: number): AxiosInstance {
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

export async function postJson(http: AxiosInstance, request: PostRequest): Promise<PostResult> {
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
export function parseRetryAfter(value: unknown, now: number): number | undefined {
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Network failures in words: a person reads these in a condition or a terminal. */
const NETWORK_WORDS: Partial<Record<string, string>> = {
  ECONNREFUSED: 'the connection was refused (nothing listens at that address and port)',
  ENOTFOUND: 'no such host (check the URL\'s host name, and DNS from the controller\'s network)',
  EAI_AGAIN: 'the host name could not be resolved now (DNS)',
  ECONNRESET: 'the connection was reset',
  EHOSTUNREACH: 'the host is unreachable from here',
  ENETUNREACH: 'the network is unreachable from here',
  CERT_HAS_EXPIRED: 'its TLS certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is self-signed',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its TLS certificate cannot be verified',
};
