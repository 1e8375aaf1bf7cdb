// One version of a model, served over HTTP on loopback: every request gets a prediction after
// a log-normal delay, or a 500 with the configured probability. Its behaviour can be changed
// while it runs, which is how the demo turns a healthy canary into a failing one.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Behaviour {
  /** Share of requests answered with a 500, 0–1. */
  errorRate: number;
  /** Median latency in milliseconds. */
  latencyMs: number;
  /** Spread of the log-normal latency (its sigma); 0.35 puts p99 at about 2.3× the median. */
  latencySpread?: number;
}

export interface ModelServer {
  url: string;
  model: string;
  version: string;
  behaviour(): Behaviour;
  set(behaviour: Partial<Behaviour>): void;
  stop(): Promise<void>;
}

export interface ModelServerOptions {
  model: string;
  version: string;
  behaviour: Behaviour;
  /** Uniform draws in [0, 1); handed in so that tests can fix them. */
  random?: () => number;
}

export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  const random = options.random ?? Math.random;
  let behaviour: Behaviour = { ...options.behaviour };
  const pending = new Set<ReturnType<typeof setTimeout>>();

  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    // The body is read and dropped: a prediction here does not depend on its input.
    request.resume();
    request.once('end', () => {
      const delay = logNormal(behaviour.latencyMs, behaviour.latencySpread ?? 0.35, random);
      const failed = random() < behaviour.errorRate;
      const timer = setTimeout(() => {
        pending.delete(timer);
        const body = failed
          ? { error: `${options.model} ${options.version}: inference failed` }
          : { model: options.model, version: options.version, predictions: [Math.round(random() * 1000) / 1000] };
        response.writeHead(failed ? 500 : 200, { 'content-type': 'application/json', 'x-model-version': options.version });
        response.end(JSON.stringify(body));
      }, delay);
      pending.add(timer);
    });
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
    behaviour: () => ({ ...behaviour }),
    set: (change) => {
      behaviour = { ...behaviour, ...change };
    },
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
