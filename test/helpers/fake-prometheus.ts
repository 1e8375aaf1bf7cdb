// A Prometheus HTTP API on loopback that answers the three built-in queries of the Istio
// provider (requests, 5xx, latency buckets; over a window or as totals) from counters the test
// serves, and that can be made slow, empty or flapping. It exists so that the controller's real
// Prometheus client, with its timeouts, retries and cancellation, meets a Prometheus that
// misbehaves on cue; the real server is used everywhere its behaviour is the point.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Served {
  at: number;
  namespace: string;
  service: string;
  revision: string;
  requests: number;
  errors: number;
}

export type FakePrometheusMode = 'ok' | 'empty' | 'error' | 'flapping';

export class FakePrometheus {
  private readonly served: Served[] = [];
  private server: Server | undefined;
  /** Every answer waits this long (the client's timeout and the check's deadline cut it short). */
  latencyMs = 0;
  /** ok; empty (no series); error (HTTP 503); flapping (alternates ok and empty every 2 s). */
  mode: FakePrometheusMode = 'ok';
  /** Queries received, and queries waiting for their answer now. */
  queries = 0;
  pending = 0;
  /** Queries whose client hung up before the answer (cancelled). */
  abandoned = 0;
  /** Every Authorization header that reached it. */
  readonly authorizations = new Set<string>();
  /** Queries waiting for their answer now, by the destination_canonical_service they ask about. */
  readonly pendingFor = new Map<string, number>();
  url = '';

  async start(): Promise<string> {
    this.server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        this.queries++;
        this.pending++;
        if (request.headers.authorization !== undefined) this.authorizations.add(request.headers.authorization);
        const params = new URLSearchParams(request.method === 'POST' ? body : (request.url ?? '').split('?')[1]);
        const service = /destination_canonical_service=~"([^"]*)"/.exec(params.get('query') ?? '')?.[1] ?? '';
        this.pendingFor.set(service, (this.pendingFor.get(service) ?? 0) + 1);
        let done = false;
        const finish = (): boolean => {
          if (done) return false;
          done = true;
          this.pending--;
          this.pendingFor.set(service, (this.pendingFor.get(service) ?? 1) - 1);
          return true;
        };
        response.on('close', () => {
          if (finish()) this.abandoned++;
        });
        const reply = (): void => {
          if (!finish()) return;
          const mode = this.mode === 'flapping' ? (Math.floor(Date.now() / 2000) % 2 === 0 ? 'ok' : 'empty') : this.mode;
          if (mode === 'error') {
            response.writeHead(503, { 'content-type': 'text/plain' });
            response.end('Service Unavailable');
            return;
          }
          const result = mode === 'empty' ? [] : this.answer(params.get('query') ?? '', Number(params.get('time') ?? Date.now() / 1000) * 1000);
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result } }));
        };
        if (this.latencyMs > 0) setTimeout(reply, this.latencyMs);
        else reply();
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => {
      if (this.server === undefined) resolve();
      else this.server.close(() => {
        resolve();
      });
    });
  }

  /**
   * Steady load until the returned function is called: every 200 ms each model's stable (v1)
   * and canary (v2) answer 50 requests; the canary of a model in `failing` answers 20 % 5xx.
   * The sets are read at each tick, so a test adds models and failures as it goes.
   */
  load(namespace: string, models: ReadonlySet<string>, failing: ReadonlySet<string>): () => void {
    const timer = setInterval(() => {
      for (const model of models) {
        this.serve(namespace, model, 'v1', 50, 0);
        this.serve(namespace, model, 'v2', 50, failing.has(model) ? 10 : 0);
      }
    }, 200);
    return () => {
      clearInterval(timer);
    };
  }

  /** `requests` answered by this version now, `errors` of them 5xx. */
  serve(namespace: string, service: string, revision: string, requests: number, errors = 0): void {
    this.served.push({ at: Date.now(), namespace, service, revision, requests, errors });
  }

  private answer(query: string, at: number): unknown[] {
    if (query.includes('istio_request_duration_milliseconds_bucket')) return [];
    const window = /\[(\d+(?:\.\d+)?)(ms|s|m|h)\]/.exec(query);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
    const since = window === null ? -Infinity : at - Number(window[1]) * unit[window[2] as keyof typeof unit];
    const errorsOnly = query.includes('response_code=~"5.."');
    const wanted = (label: string): RegExp | undefined => {
      const match = new RegExp(`${label}=~"([^"]*)"`).exec(query);
      return match?.[1] === undefined ? undefined : new RegExp(`^(?:${match[1].replaceAll('\\\\', '\\')})$`);
    };
    const revisions = wanted('destination_canonical_revision');
    const services = wanted('destination_canonical_service');
    const groups = new Map<string, { labels: Record<string, string>; value: number }>();
    for (const s of this.served) {
      if (s.at > at || (revisions !== undefined && !revisions.test(s.revision)) || (services !== undefined && !services.test(s.service))) continue;
      const labels = { destination_workload_namespace: s.namespace, destination_canonical_service: s.service, destination_canonical_revision: s.revision };
      const key = JSON.stringify(labels);
      const group = groups.get(key) ?? { labels, value: 0 };
      if (s.at > since) group.value += errorsOnly ? s.errors : s.requests;
      groups.set(key, group);
    }
    return [...groups.values()].map((g) => ({ metric: g.labels, value: [at / 1000, String(g.value)] }));
  }
}
