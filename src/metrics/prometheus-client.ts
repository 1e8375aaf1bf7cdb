// The Prometheus HTTP API (instant queries), over axios, with answers parsed by zod at the
// boundary and every failure returned as a value: the engine must be able to tell "could
// not measure" from "measured bad", so nothing here throws at the caller.

import { Agent } from 'node:https';
import { readFile } from 'node:fs/promises';
import axios, { type AxiosInstance } from 'axios';
import { z } from 'zod';

export type Credentials =
  | { kind: 'bearer'; token: string }
  /** A token file read at every query, as Kubernetes rotates projected tokens. */
  | { kind: 'bearerFile'; path: string }
  | { kind: 'basic'; username: string; password: string };

export interface PrometheusClientConfig {
  /** Base URL, such as http://prometheus.istio-system:9090; user:password@ in it becomes basic auth. */
  address: string;
  timeoutMs?: number;
  headers?: Readonly<Record<string, string>>;
  credentials?: Credentials;
  /** PEM certificate(s) to trust for https. */
  ca?: string;
  /** Further attempts after a network error or a 5xx; never after a 4xx. */
  retries?: number;
  backoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Told the duration of every attempt, for the controller's metrics. */
  onQuery?: (seconds: number, outcome: 'ok' | 'error') => void;
}

export interface Series {
  labels: Record<string, string>;
  value: number;
}

export type QueryResult =
  | { kind: 'vector'; series: Series[] }
  | { kind: 'scalar'; value: number }
  | { kind: 'error'; message: string; errorType?: string | undefined; status?: number | undefined };

const SampleValue = z.tuple([z.number(), z.string()]);
const ApiAnswer = z.union([
  z.object({
    status: z.literal('success'),
    data: z.discriminatedUnion('resultType', [
      z.object({ resultType: z.literal('vector'), result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: SampleValue })) }),
      z.object({ resultType: z.literal('scalar'), result: SampleValue }),
      z.object({ resultType: z.literal('string'), result: SampleValue }),
      z.object({ resultType: z.literal('matrix'), result: z.array(z.unknown()) }),
    ]),
  }),
  z.object({ status: z.literal('error'), errorType: z.string(), error: z.string() }),
]);

const RETRIED_NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'ERR_SOCKET_CONNECTION_TIMEOUT']);

export class PrometheusClient {
  readonly address: string;
  private readonly http: AxiosInstance;
  private readonly config: Required<Pick<PrometheusClientConfig, 'timeoutMs' | 'retries' | 'backoffMs' | 'sleep'>> & PrometheusClientConfig;
  private readonly credentials: Credentials | undefined;
  /** Queries sent, attempts included; for the batching benchmark and tests. */
  sent = 0;

  constructor(config: PrometheusClientConfig) {
    const url = new URL(config.address);
    this.credentials =
      config.credentials ?? (url.username === '' ? undefined : { kind: 'basic', username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
    // The address is printed in messages: never with credentials.
    url.username = '';
    url.password = '';
    this.address = url.toString().replace(/\/$/, '');
    // Field by field: an option given as undefined keeps its default.
    this.config = {
      ...config,
      timeoutMs: config.timeoutMs ?? 10_000,
      retries: config.retries ?? 2,
      backoffMs: config.backoffMs ?? 250,
      sleep: config.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    };
    this.http = axios.create({
      baseURL: this.address,
      timeout: this.config.timeoutMs,
      headers: { ...config.headers, Accept: 'application/json' },
      httpsAgent: config.ca === undefined ? undefined : new Agent({ ca: config.ca }),
      // Every status and body is ours to judge; axios only carries bytes.
      validateStatus: () => true,
      transformResponse: (body: unknown) => body,
      responseType: 'text',
    });
  }

  /**
   * An instant query evaluated at `at`. A `signal` that aborts (the check's deadline) ends the
   * query and its retries at once, with an error result: a late answer is never used.
   */
  async query(promql: string, at: Date, signal?: AbortSignal): Promise<QueryResult> {
    const body = new URLSearchParams({ query: promql, time: (at.getTime() / 1000).toFixed(3), timeout: `${this.config.timeoutMs}ms` });
    let last: QueryResult = { kind: 'error', message: 'no attempt made' };
    for (let attempt = 0; attempt <= this.config.retries; attempt++) {
      if (attempt > 0) await this.config.sleep(this.config.backoffMs * 2 ** (attempt - 1));
      if (aborted(signal)) return cancelled(this.address);
      const { result, retry } = await this.attempt(body, signal);
      last = result;
      if (aborted(signal)) return cancelled(this.address);
      if (!retry) return result;
    }
    return last.kind === 'error' ? { ...last, message: `${last.message} (after ${this.config.retries + 1} attempts)` } : last;
  }

  private async attempt(body: URLSearchParams, signal: AbortSignal | undefined): Promise<{ result: QueryResult; retry: boolean }> {
    const started = performance.now();
    const outcome = await this.send(body, signal);
    this.config.onQuery?.((performance.now() - started) / 1000, outcome.result.kind === 'error' ? 'error' : 'ok');
    return outcome;
  }

  private async send(body: URLSearchParams, signal: AbortSignal | undefined): Promise<{ result: QueryResult; retry: boolean }> {
    this.sent++;
    let response;
    try {
      response = await this.http.post<string>('/api/v1/query', body.toString(), {
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...(await this.authorization()) },
        signal,
      });
    } catch (error) {
      const code = axios.isAxiosError(error) ? error.code : undefined;
      const timedOut = code === 'ECONNABORTED' || code === 'ETIMEDOUT';
      const message = timedOut ? `no answer from ${this.address} within ${this.config.timeoutMs} ms` : `cannot reach ${this.address}: ${code ?? (error as Error).message}`;
      return { result: { kind: 'error', message }, retry: code === undefined || RETRIED_NETWORK_ERRORS.has(code) };
    }
    const result = parseAnswer(response.status, String(response.headers['content-type'] ?? ''), response.data, this.address);
    return { result, retry: response.status >= 500 };
  }

  private async authorization(): Promise<Record<string, string>> {
    const credentials = this.credentials;
    if (credentials === undefined) return {};
    switch (credentials.kind) {
      case 'bearer':
        return { Authorization: `Bearer ${credentials.token}` };
      case 'bearerFile':
        return { Authorization: `Bearer ${(await readFile(credentials.path, 'utf8')).trim()}` };
      case 'basic':
        return { Authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` };
    }
  }
}

function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function cancelled(address: string): QueryResult {
  return { kind: 'error', message: `the query to ${address} was cancelled at the check's deadline` };
}

/**
 * The answer as a query result. What is not a Prometheus API answer is described by its HTTP
 * status and content type only, never by its body: an address that is not Prometheus (or a
 * service a ModelCanary pointed the controller at) must not have its answer copied into
 * status, events or logs.
 */
function parseAnswer(status: number, contentType: string, text: string, address: string): QueryResult {
  const kind = contentType.split(';')[0]?.trim() || 'no content type';
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'error', status, message: `${address} answered HTTP ${status} with ${kind}, not the Prometheus API` };
  }
  const parsed = ApiAnswer.safeParse(json);
  if (!parsed.success) return { kind: 'error', status, message: `${address} answered HTTP ${status} with JSON that is not a Prometheus query result` };
  const answer = parsed.data;
  if (answer.status === 'error') return { kind: 'error', status, errorType: answer.errorType.slice(0, 64), message: `Prometheus answered ${status} ${answer.errorType.slice(0, 64)}: ${answer.error.slice(0, 300)}` };
  const { data } = answer;
  switch (data.resultType) {
    case 'vector':
      return { kind: 'vector', series: data.result.map((s) => ({ labels: s.metric, value: parseNumber(s.value[1]) })) };
    case 'scalar':
      return { kind: 'scalar', value: parseNumber(data.result[1]) };
    case 'string':
    case 'matrix':
      return { kind: 'error', status, message: `the query returned a ${data.resultType}; a check needs an instant vector or a scalar` };
  }
}

/** Prometheus writes sample values as strings, with NaN, +Inf and -Inf spelled its own way. */
function parseNumber(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

