// The HTTP side of rollout webhooks (spec.analysis.webhooks) and webhook gates
// (spec.analysis.gates with approval: webhook): the body we POST, one call with its retries,
// and whether a URL is one the operator lets a ModelCanary call. When to call and what an
// answer does to the rollout belong to the controller; an answer here is only "yes" (2xx),
// "no" (any other status) or "could not ask".

import { STATUS_CODES } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import type { Webhook } from '../api/modelcanary.ts';
import { isUnder, redact } from '../api/addresses.ts';
import { isTransient, JsonEndpoint, type PostResult } from './http.ts';

export const HOOK_API_VERSION = 'modelcanary.io/webhook/v1';

/** When the call is made: a webhook's type, or a gate asking whether it may open. */
export type HookType = Webhook['type'] | 'gate';

/**
 * The JSON document POSTed to a webhook or a webhook gate:
 *
 *     { "apiVersion": "modelcanary.io/webhook/v1",
 *       "type": "preRollout" | "rollout" | "postRollout" | "rollback" | "gate",
 *       "hook": "<the webhook's or gate's name>",
 *       "name": "<the ModelCanary's name>", "namespace": "<its namespace>", "phase": "<status.phase>",
 *       "model": "...", "stableVersion": "...", "canaryVersion": "...",
 *       "weight": <percent of traffic on the canary>, "step": <from 1>, "steps": <how many>,
 *       "metadata": { "<key>": "<string>", ... } }
 *
 * `name`, `namespace`, `phase` and `metadata` sit at the top level, with those names and types,
 * because that is Flagger's CanaryWebhookPayload ({name, namespace, phase, checksum, metadata}),
 * which Flagger's load tester (fluxcd/flagger, cmd/loadtester) decodes, ignoring the other keys:
 * its POST / runs metadata.cmd (metadata.type cmd, bash, ...) and its /gate/check, /gate/approve
 * and /gate/halt key on name and namespace. So a Flagger load tester works unchanged as a rollout
 * webhook or a webhook gate. `metadata` is always an object (empty when the spec has none), and
 * its values are strings, as Flagger's map[string]string requires.
 */
export interface HookBody {
  apiVersion: typeof HOOK_API_VERSION;
  type: HookType;
  hook: string;
  name: string;
  namespace: string;
  phase: string;
  model: string;
  stableVersion: string;
  canaryVersion: string;
  weight: number;
  step: number;
  steps: number;
  metadata: Record<string, string>;
}

/** What the controller knows of the ModelCanary when it calls a hook: the body's facts about it. */
export type HookCanary = Omit<HookBody, 'apiVersion' | 'type' | 'hook' | 'metadata'>;

export interface HookFacts {
  type: HookType;
  /** The webhook's or the gate's name. */
  name: string;
  canary: HookCanary;
  metadata?: Readonly<Record<string, string>> | undefined;
}

export function hookBody(facts: HookFacts): HookBody {
  const { name, namespace, phase, model, stableVersion, canaryVersion, weight, step, steps } = facts.canary;
  return { apiVersion: HOOK_API_VERSION, type: facts.type, hook: facts.name, name, namespace, phase, model, stableVersion, canaryVersion, weight, step, steps, metadata: { ...facts.metadata } };
}

/** One POST of a hook body; JsonEndpoint's by default. */
export type HookPost = (body: HookBody, signal: AbortSignal, headers: Readonly<Record<string, string>>) => Promise<PostResult>;

export interface HookRequest {
  /** Checked with checkHookUrl by the caller; never printed. */
  url: string;
  body: HookBody;
  /** Bounds each attempt, not the whole call: `signal` bounds that. */
  timeoutMs: number;
  /** Further attempts after a transient failure. */
  retries: number;
  signal: AbortSignal;
  /** Sent as Idempotency-Key, the same on every attempt, so that a receiver can drop a repeat (a retried load test). */
  idempotencyKey: string;
  /** Waits between attempts; rejects when `signal` aborts. Default: a timer. */
  sleep?: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
  /** Jitter for the backoff, in [0, 1). Default: Math.random. */
  random?: (() => number) | undefined;
  post?: HookPost | undefined;
}

/**
 * How a call came out. Not ok with a status: the hook answered "no" (or kept answering a
 * transient status until the retries ran out). Not ok without one: it could not be asked.
 */
export type HookResult = { ok: true; status: number; attempts: number } | { ok: false; problem: string; attempts: number; status?: number };

const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;
/** At most this much of an answer is repeated in a problem. */
const ECHOED_CHARS = 200;

/**
 * POSTs the body, retrying what may pass (no answer, a timeout, 408, 425, 429, 5xx) up to
 * `retries` more times with a jittered backoff (250 ms doubling, at most 5 s, longer when the
 * hook sends Retry-After, within that cap). 2xx is ok; any other answer is a "no" and is not
 * retried: a gate stays closed, a preRollout hook has failed.
 *
 * Cancellation is a value, never a throw: once `signal` aborts, no further attempt or wait
 * starts and the result is `{ ok: false, problem: 'cancelled' }` (callers that need to tell it
 * apart test their own signal). An answer that arrived before the abort is reported as it is.
 * Problems never hold the URL, nor more than 200 characters of an answer.
 */
export async function callHook(request: HookRequest): Promise<HookResult> {
  const { signal } = request;
  const post = request.post ?? endpointPost(request.url, request.timeoutMs);
  const sleep = request.sleep ?? sleepUnlessAborted;
  const random = request.random ?? Math.random;
  const headers = { 'Idempotency-Key': request.idempotencyKey };
  const attemptsAllowed = 1 + Math.max(0, Math.floor(request.retries));
  let attempts = 0;
  for (;;) {
    if (isAborted(signal)) return cancelled(attempts);
    attempts += 1;
    const result = await post(request.body, signal, headers);
    if (!result.answered && isAborted(signal)) return cancelled(attempts);
    const judged = judgeHookAnswer(result, request.url);
    if (judged.ok) return { ok: true, status: judged.status, attempts };
    if (!judged.again || attempts >= attemptsAllowed) {
      return judged.status === undefined ? { ok: false, problem: judged.problem, attempts } : { ok: false, problem: judged.problem, attempts, status: judged.status };
    }
    try {
      await sleep(backoffMs(attempts - 1, judged.retryAfterMs, random), signal);
    } catch (error) {
      if (isAborted(signal)) return cancelled(attempts);
      throw error;
    }
  }
}

type Judged = { ok: true; status: number } | { ok: false; problem: string; status?: number | undefined; again: boolean; retryAfterMs?: number | undefined };

function judgeHookAnswer(result: PostResult, url: string): Judged {
  if (!result.answered) return { ok: false, problem: result.problem, again: result.retry === 'later' };
  const { status } = result;
  if (status >= 200 && status < 300) return { ok: true, status };
  const redirect = status >= 300 && status < 400 ? '; redirects are not followed' : '';
  const said = echo(result.body, url);
  return {
    ok: false,
    status,
    problem: `the webhook answered ${status} (${STATUS_CODES[status] ?? 'an unknown status'}${redirect})${said === '' ? '' : `: ${said}`}`,
    again: isTransient(status),
    retryAfterMs: result.retryAfterMs,
  };
}

/** The n-th wait (from 0): doubling from 250 ms, jittered into its upper half, never past 5 s. */
function backoffMs(retry: number, retryAfterMs: number | undefined, random: () => number): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** retry);
  const jittered = ceiling * (0.5 + 0.5 * random());
  return Math.min(MAX_BACKOFF_MS, Math.max(jittered, retryAfterMs ?? 0));
}

/** Read through a call: TypeScript would carry `signal.aborted`'s narrowing across an await. */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

function cancelled(attempts: number): HookResult {
  return { ok: false, problem: 'cancelled', attempts };
}

function endpointPost(url: string, timeoutMs: number): HookPost {
  const endpoint = new JsonEndpoint(url, 'the webhook', timeoutMs);
  return (body, signal, headers) => endpoint.post(body, signal, headers);
}

async function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  await delay(ms, undefined, { signal });
}

/**
 * An answer fit to repeat: control and format characters out (no forged lines, no terminal
 * escapes, no bidi tricks), anything of the URL that could be a token blanked (a 404 page
 * often quotes the path), and at most 200 characters.
 */
function echo(body: string, url: string): string {
  let text = body.replace(/\p{Cf}+/gu, '').replace(/[\p{Cc}\s]+/gu, ' ').trim();
  for (const part of tokenCandidates(url)) text = text.split(part).join('[redacted]');
  const chars = Array.from(text);
  return chars.length <= ECHOED_CHARS ? text : `${chars.slice(0, ECHOED_CHARS).join('')}…`;
}

/** Shorter than this, a path segment or query value is a word, not a token. */
const MIN_TOKEN_CHARS = 8;

/** The URL, and each path segment, query value and credential in it long enough to be a token, as written and decoded; longest first. */
function tokenCandidates(url: string): string[] {
  const parts = [url];
  if (URL.canParse(url)) {
    const parsed = new URL(url);
    parts.push(parsed.href, parsed.username, parsed.password, ...parsed.pathname.split('/'), ...parsed.searchParams.values());
  }
  const both = parts.flatMap((part) => [part, decoded(part)]).filter((part) => part.length >= MIN_TOKEN_CHARS);
  return [...new Set(both)].sort((a, b) => b.length - a.length);
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Why a ModelCanary may not call `url`, or undefined when it may: an http(s) URL, without
 * credentials, query or fragment, under one of the operator's `allowed` prefixes (the
 * --allow-webhook addresses that also bound the generic notification webhooks). The problem
 * leaves the URL out (it may hold a token) and starts with its verb, for the caller to put the
 * field path in front: "spec.analysis.webhooks[0].url is not under …".
 */
export function checkHookUrl(url: string, allowed: readonly string[]): string | undefined {
  if (!URL.canParse(url)) return 'is not a URL; write it as http://host[:port]/path, under an address the operator allowed';
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (parsed.username !== '' || parsed.password !== '') return 'holds credentials (user:password@), which everyone who can read the ModelCanary would see; remove them';
  if (parsed.hash !== '' || url.includes('#')) return 'has a fragment (#…), which is never sent; remove it';
  if (parsed.search !== '') return 'has a query (?…), which an allowed address may not carry; pass what it says in metadata instead';
  if (allowed.some((prefix) => isUnder(url, prefix))) return undefined;
  return `is not under an address the operator allowed (modelcanary run --allow-webhook URL); allowed: ${allowed.length === 0 ? 'none' : allowed.map(redact).join(', ')}`;
}
