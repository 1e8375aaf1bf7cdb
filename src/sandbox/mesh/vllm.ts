// What vLLM's /metrics exports of the answers it streams, as its PrometheusStatLogger does
// (vllm/v1/metrics/loggers.py, 0.11 and later): the time to first token, each inter-token gap
// and the end-to-end latency, as histograms in seconds with vLLM's own buckets, labelled by
// model_name (the --served-model-name) and engine. The simulated mesh exports them on its
// telemetry endpoint beside Istio's metrics, so that the demo's Prometheus scrapes both.

import { Histogram, type Registry } from 'prom-client';
import { LATENCY_FAMILIES } from '../../api/presets.ts';
import type { LlmTiming } from './model-server.ts';

const LABELS = ['model_name', 'engine'] as const;

export class VllmTelemetry {
  private readonly ttft: Histogram<(typeof LABELS)[number]>;
  private readonly interToken: Histogram<(typeof LABELS)[number]>;
  private readonly e2e: Histogram<(typeof LABELS)[number]>;

  constructor(registry: Registry) {
    const registers = [registry];
    const histogram = (family: (typeof LATENCY_FAMILIES)[keyof typeof LATENCY_FAMILIES]['vllm'], help: string): Histogram<(typeof LABELS)[number]> =>
      new Histogram({ name: family.names[0] ?? '', help, labelNames: LABELS, buckets: [...family.bucketsS], registers });
    this.ttft = histogram(LATENCY_FAMILIES.ttft.vllm, 'Histogram of time to first token in seconds.');
    this.interToken = histogram(LATENCY_FAMILIES.interTokenLatency.vllm, 'Histogram of inter-token latency in seconds.');
    this.e2e = histogram(LATENCY_FAMILIES.e2eLatency.vllm, 'Histogram of e2e request latency in seconds.');
  }

  /** A first token, or a finished answer, of the engine serving `servedModelName`. */
  record(servedModelName: string, timing: LlmTiming): void {
    const labels = { model_name: servedModelName, engine: '0' };
    if (timing.kind === 'firstToken') {
      this.ttft.observe(labels, timing.ttftS);
      return;
    }
    for (const gap of timing.gapsS) this.interToken.observe(labels, gap);
    this.e2e.observe(labels, timing.e2eS);
  }
}
