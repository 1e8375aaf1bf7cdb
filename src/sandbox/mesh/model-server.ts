// One pod of a model version, served over HTTP on loopback: every request gets a prediction
// after a log-normal delay, or an error answer (500 unless told otherwise) with the configured
// probability. Its behaviour can be changed while it runs, which is how the demo turns a
// healthy canary into a failing one, and how a test breaks one pod out of three.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Behaviour {
  /** Share of requests answered with an error, 0–1. */
  errorRate: number;
  /** Median latency in milliseconds. */
  latencyMs: number;
  /** Spread of the log-normal latency (its sigma); 0.35 puts p99 at about 2.3× the median. */
  latencySpread?: number;
  /** The status of an error answer; default 500 (503 is what Istio's retry policies single out). */
  errorCode?: number;
  /** An LLM: the answer streams, its first token after a log-normal time, then a token per gap (latencyMs is then unused). */
  llm?: LlmBehaviour | undefined;
}

export interface LlmBehaviour {
  /** Median time to first token in milliseconds. */
  ttftMs: number;
  /** Spread of the log-normal time to first token; default 0.35. */
  ttftSpread?: number;
  /** Median gap between two tokens in milliseconds. */
  interTokenMs: number;
  /** Spread of the log-normal gaps; default 0.3. */
  interTokenSpread?: number;
  /** Tokens streamed per answer. */
  outputTokens: number;
}

/**
 * What vLLM measures of one answer, in seconds, when it measures it (vllm/v1/metrics/stats.py):
 * the time to first token as the first token comes, and the gaps and the whole request's
 * latency once it has finished (vLLM records each gap as its token comes; here they come with
 * the last one).
 */
export type LlmTiming = { kind: 'firstToken'; ttftS: number } | { kind: 'finished'; gapsS: number[]; e2eS: number };

/** Answers given so far, by kind. */
export interface ServedTally {
  ok: number;
  failed: number;
}

export interface ModelServer {
  url: string;
  model: string;
  version: string;
  /** The pod's name, e.g. fraud-detector-v2-1. */
  pod: string;
  behaviour(): Behaviour;
  set(behaviour: Partial<Behaviour>): void;
  served(): ServedTally;
  stop(): Promise<void>;
}

export interface ModelServerOptions {
  model: string;
  version: string;
  /** Default: `${model}-${version}`. */
  pod?: string;
  behaviour: Behaviour;
  /** Uniform draws in [0, 1); handed in so that tests can fix them. */
  random?: () => number;
  /** LLM answers: called at the first token and at the last, as vLLM records its histograms. */
  onLlmAnswer?: (timing: LlmTiming) => void;
}

export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  const random = options.random ?? Math.random;
  let behaviour: Behaviour = { ...options.behaviour };
  const served: ServedTally = { ok: 0, failed: 0 };
  const pending = new Set<ReturnType<typeof setTimeout>>();

  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    // The body is read and dropped: a prediction here does not depend on its input.
    request.resume();
    request.once('end', () => {
      const failed = random() < behaviour.errorRate;
      const llm = behaviour.llm;
      if (llm !== undefined && !failed) {
        stream(response, llm);
        return;
      }
      const delay = logNormal(behaviour.latencyMs, behaviour.latencySpread ?? 0.35, random);
      const timer = setTimeout(() => {
        pending.delete(timer);
        const body = failed
          ? { error: `${options.model} ${options.version}: inference failed` }
          : { model: options.model, version: options.version, predictions: [Math.round(random() * 1000) / 1000] };
        if (failed) served.failed++;
        else served.ok++;
        response.writeHead(failed ? (behaviour.errorCode ?? 500) : 200, { 'content-type': 'application/json', 'x-model-version': options.version });
        response.end(JSON.stringify(body));
      }, delay);
      pending.add(timer);
    });
  };

  /**
   * An answer streamed as server-sent events: the headers and first token after the time to
   * first token, the rest when the last gap has passed (one write for them all: the timing is
   * what matters here, and a timer per token would load the event loop for nothing).
   */
  const stream = (response: ServerResponse, llm: LlmBehaviour): void => {
    const ttftMs = logNormal(llm.ttftMs, llm.ttftSpread ?? 0.35, random);
    const gapsMs = Array.from({ length: Math.max(0, llm.outputTokens - 1) }, () => logNormal(llm.interTokenMs, llm.interTokenSpread ?? 0.3, random));
    const restMs = gapsMs.reduce((sum, gap) => sum + gap, 0);
    const chunk = (text: string): string => `data: ${JSON.stringify({ model: options.model, version: options.version, choices: [{ delta: { content: text } }] })}\n\n`;
    const first = setTimeout(() => {
      pending.delete(first);
      response.writeHead(200, { 'content-type': 'text/event-stream', 'x-model-version': options.version });
      response.write(chunk('Hello'));
      options.onLlmAnswer?.({ kind: 'firstToken', ttftS: ttftMs / 1000 });
      const last = setTimeout(() => {
        pending.delete(last);
        served.ok++;
        response.end(`${chunk(' world'.repeat(Math.max(0, llm.outputTokens - 1)))}data: [DONE]\n\n`);
        options.onLlmAnswer?.({ kind: 'finished', gapsS: gapsMs.map((g) => g / 1000), e2eS: (ttftMs + restMs) / 1000 });
      }, restMs);
      pending.add(last);
    }, ttftMs);
    pending.add(first);
  };

  const server = createServer(handle);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    model: options.model,
    version: options.version,
    pod: options.pod ?? `${options.model}-${options.version}`,
    behaviour: () => ({ ...behaviour }),
    set: (change) => {
      behaviour = { ...behaviour, ...change };
    },
    served: () => ({ ...served }),
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        for (const timer of pending) clearTimeout(timer);
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}

/** A log-normal draw with the given median, by Box–Muller. */
function logNormal(median: number, sigma: number, random: () => number): number {
  const u = Math.max(random(), Number.EPSILON);
  const v = random();
  const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return median * Math.exp(sigma * normal);
}
