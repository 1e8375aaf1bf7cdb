// The real Prometheus for tests: the launcher the demo uses, and why it cannot run here.
import { prometheusMissing } from '../../src/sandbox/prometheus.ts';

export { backfill, startPrometheus, type RunningPrometheus } from '../../src/sandbox/prometheus.ts';

/** Why Prometheus tests cannot run here, for `{ skip: PROMETHEUS_MISSING }`; undefined when they can. */
export const PROMETHEUS_MISSING: string | undefined = prometheusMissing(process.env.PATH);
