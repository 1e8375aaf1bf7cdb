// A load generator: real HTTP requests to the ingress gateway at a steady rate, counted by
// the version that answered (the model servers name themselves in x-model-version).

import { Agent, request as httpRequest } from 'node:http';

export interface LoadOptions {
  /** The ingress gateway, e.g. http://127.0.0.1:40123. */
  url: string;
  /** The Host header: the service, e.g. fraud-detector.models.svc.cluster.local. */
  host: string;
  path: string;
  ratePerSecond: number;
  headers?: Readonly<Record<string, string>>;
  /** Requests in flight beyond which new ones are skipped (and counted as skipped); default 256. */
  maxInFlight?: number;
}

export interface VersionTally {
  ok: number;
  failed: number;
}

export interface LoadStats {
  sent: number;
  /** Answers by the version that served them. */
  byVersion: Record<string, VersionTally>;
  /** Answers from the gateway itself (no route, no upstream) and broken connections. */
  unserved: number;
  /** Not sent because maxInFlight requests were pending. */
  skipped: number;
}

export interface Load {
  stats(): LoadStats;
  setRate(ratePerSecond: number): void;
  /** Stops sending and waits for the requests in flight. */
  stop(): Promise<void>;
}

const TICK_MS = 20;

export function startLoad(options: LoadOptions): Load {
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const body = JSON.stringify({ instances: [[0.1, 0.2, 0.3]] });
  const stats: LoadStats = { sent: 0, byVersion: {}, unserved: 0, skipped: 0 };
  const inFlight = new Set<Promise<void>>();
  let rate = options.ratePerSecond;
  let credit = 0;
  let last = performance.now();

  const send = (): Promise<void> =>
    new Promise((resolve) => {
      const req = httpRequest(
        `${options.url}${options.path}`,
        { method: 'POST', agent, headers: { ...options.headers, host: options.host, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.once('end', () => {
            const version = res.headers['x-model-version'];
            if (typeof version !== 'string') stats.unserved++;
            else {
              const tally = (stats.byVersion[version] ??= { ok: 0, failed: 0 });
              if ((res.statusCode ?? 500) >= 500) tally.failed++;
              else tally.ok++;
            }
            resolve();
          });
        },
      );
      req.once('error', () => {
        stats.unserved++;
        resolve();
      });
      req.end(body);
    });

  const timer = setInterval(() => {
    const now = performance.now();
    credit += (rate * (now - last)) / 1000;
    last = now;
    while (credit >= 1) {
      credit--;
      if (inFlight.size >= (options.maxInFlight ?? 256)) {
        stats.skipped++;
        continue;
      }
      stats.sent++;
      const pending = send().finally(() => inFlight.delete(pending));
      inFlight.add(pending);
    }
  }, TICK_MS);

  let stopped: Promise<void> | undefined;
  return {
    stats: () => structuredClone(stats),
    setRate: (ratePerSecond) => {
      rate = ratePerSecond;
    },
    stop: () => {
      stopped ??= (async () => {
        clearInterval(timer);
        await Promise.all(inFlight);
        agent.destroy();
      })();
      return stopped;
    },
  };
}
