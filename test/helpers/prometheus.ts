// The real Prometheus for tests: the launcher the demo uses, and why it cannot run here.
import { after, before } from 'node:test';
import { PrometheusClient } from '../../src/metrics/prometheus-client.ts';
import { prometheusMissing, startPrometheus, type RunningPrometheus } from '../../src/sandbox/prometheus.ts';

export { backfill, startPrometheus, type RunningPrometheus } from '../../src/sandbox/prometheus.ts';

/** Why Prometheus tests cannot run here, for `{ skip: PROMETHEUS_MISSING }`; undefined when they can. */
export const PROMETHEUS_MISSING: string | undefined = prometheusMissing(process.env.PATH);

/**
 * A real Prometheus for one test file, started before its tests with these series and stopped
 * after them (none where Prometheus is missing); `client()` asks it.
 */
export function prometheusWith(openMetrics: () => string): { client: () => PrometheusClient } {
  let running: RunningPrometheus | undefined;
  before(async () => {
    if (PROMETHEUS_MISSING === undefined) running = await startPrometheus({ openMetrics: openMetrics() });
  });
  after(() => running?.stop());
  return {
    client: () => {
      if (running === undefined) throw new Error('Prometheus did not start');
      return new PrometheusClient({ address: running.url, timeoutMs: 5000 });
    },
  };
}
