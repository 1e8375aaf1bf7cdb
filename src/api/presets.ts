// The LLM metric presets: which exporter's series each preset reads, with which labels, and in
// which unit. Verified against the exporters' own source (docs/llm.md names the versions):
// vLLM's PrometheusStatLogger (vllm/v1/metrics/loggers.py) and the Gateway API Inference
// Extension's endpoint picker (pkg/epp/metrics/metrics.go). The metrics layer renders queries
// from this table, the engine knows from it which metrics it is shown separately, and the
// simulated mesh exports the same names.

export const LLM_LATENCY_TYPES = ['ttft', 'interTokenLatency', 'e2eLatency'] as const;
export type LlmLatencyType = (typeof LLM_LATENCY_TYPES)[number];
export const LLM_ERROR_TYPES = ['inferenceErrorRate'] as const;
export type LlmErrorType = (typeof LLM_ERROR_TYPES)[number];
export type PresetType = LlmLatencyType | LlmErrorType;
export const PRESET_TYPES: readonly PresetType[] = [...LLM_LATENCY_TYPES, ...LLM_ERROR_TYPES];

export const PRESET_SOURCES = ['vllm', 'endpointPicker'] as const;
export type PresetSource = (typeof PRESET_SOURCES)[number];

/** Whether a metric type is a preset, read from its exporter's series rather than Istio's. */
export function isPresetType(type: string): type is PresetType {
  return (PRESET_TYPES as readonly string[]).includes(type);
}

export function isLatencyPresetType(type: string): type is LlmLatencyType {
  return (LLM_LATENCY_TYPES as readonly string[]).includes(type);
}

// Bucket bounds in seconds, as the exporters declare them.
/** vllm:time_to_first_token_seconds. */
export const VLLM_TTFT_BUCKETS_S = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0] as const;
/** vllm:inter_token_latency_seconds (and time_per_output_token before it). */
export const VLLM_ITL_BUCKETS_S = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0] as const;
/** vllm:e2e_request_latency_seconds. */
export const VLLM_E2E_BUCKETS_S = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0] as const;
/** The endpoint picker's generalLatencyBuckets (TTFT, request duration). */
export const EPP_LATENCY_BUCKETS_S = [
  0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
] as const;
/** The endpoint picker's tpotBuckets. */
export const EPP_TPOT_BUCKETS_S = [
  0.0005, 0.00205, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.5, 2, 3, 4.5, 6, 12, 18, 24, 30, 36, 48, 60, 90, 120, 180, 270, 360,
] as const;

/** One histogram family: its names (newest first; an older name is read only where the newer is absent). */
export interface HistogramFamily {
  names: readonly string[];
  /** Its bucket bounds in seconds (those of the newest release), for the simulator and the simulated mesh. */
  bucketsS: readonly number[];
  /** What a person reads in a reason: "time to first token". */
  what: string;
  /** Which exporter, and from which version, in words for the missing-series message. */
  exporter: string;
  /** The label that names the version's model by default. */
  modelLabel: string;
  /** Each observation counts one request, or one token gap (inter-token latency). */
  observes: 'requests' | 'tokens';
}

/** The histogram each latency preset reads, per source; undefined where the source has none. */
export const LATENCY_FAMILIES: Readonly<Record<LlmLatencyType, Readonly<Record<PresetSource, HistogramFamily>>>> = {
  ttft: {
    vllm: { names: ['vllm:time_to_first_token_seconds'], bucketsS: VLLM_TTFT_BUCKETS_S, what: 'time to first token', exporter: "vLLM's /metrics", modelLabel: 'model_name', observes: 'requests' },
    endpointPicker: {
      names: ['inference_objective_request_ttft_seconds'],
      bucketsS: EPP_LATENCY_BUCKETS_S,
      what: 'time to first token',
      exporter: "the endpoint picker's /metrics (v1.2 or later, with the predicted-latency plugin, which alone records TTFT)",
      modelLabel: 'target_model_name',
      observes: 'requests',
    },
  },
  interTokenLatency: {
    // vLLM 0.11 renamed time_per_output_token to inter_token_latency and emits both, with the same counts.
    vllm: { names: ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds'], bucketsS: VLLM_ITL_BUCKETS_S, what: 'inter-token latency', exporter: "vLLM's /metrics", modelLabel: 'model_name', observes: 'tokens' },
    endpointPicker: {
      names: ['inference_objective_request_tpot_seconds'],
      bucketsS: EPP_TPOT_BUCKETS_S,
      what: 'time per output token',
      exporter: "the endpoint picker's /metrics (v1.2 or later, with the predicted-latency plugin, which alone records TPOT)",
      modelLabel: 'target_model_name',
      observes: 'requests',
    },
  },
  e2eLatency: {
    vllm: { names: ['vllm:e2e_request_latency_seconds'], bucketsS: VLLM_E2E_BUCKETS_S, what: 'end-to-end latency', exporter: "vLLM's /metrics", modelLabel: 'model_name', observes: 'requests' },
    endpointPicker: {
      // inference_model_* until v1.0, inference_objective_* from v1.1.
      names: ['inference_objective_request_duration_seconds', 'inference_model_request_duration_seconds'],
      bucketsS: EPP_LATENCY_BUCKETS_S,
      what: 'end-to-end latency',
      exporter: "the endpoint picker's /metrics",
      modelLabel: 'target_model_name',
      observes: 'requests',
    },
  },
};

/** The endpoint picker's request and error counters, newest names first. */
export const INFERENCE_COUNTERS = {
  requests: ['inference_objective_request_total', 'inference_model_request_total'],
  errors: ['inference_objective_request_error_total', 'inference_model_request_error_total'],
  exporter: "the endpoint picker's /metrics",
  modelLabel: 'target_model_name',
} as const;

/** The exporters' histograms are in seconds; the engine's latencies are in milliseconds. */
export const SECONDS_TO_MS = 1000;

/**
 * The label matchers that select one version in a preset's series: the metric's own, or the
 * default, the exporter's model label equal to `<model>-<version>` (vLLM's --served-model-name,
 * the endpoint picker's target model).
 */
export function presetLabels(modelLabel: string, model: string, version: string, own: Readonly<Record<string, string>> | undefined): Record<string, string> {
  return own === undefined ? { [modelLabel]: `${model}-${version}` } : { ...own };
}

/**
 * The part of a check's window a latency preset may judge when requests are long. Histograms
 * count a request when it finishes, so in the first `maxRequestDurationMs` after a weight change
 * the version's new share of requests is seen only through those that finished quickly: the
 * short ones are over-represented until every request started after the change could have
 * finished. The window therefore starts no earlier than that; before it, nothing is judged.
 * Windows are whole seconds, as the checks' own.
 */
export function settledWindow(windowMs: number, at: Date, stepStartedAt: Date | undefined, maxRequestDurationMs: number | undefined): { kind: 'window'; ms: number } | { kind: 'waiting'; until: Date } {
  if (maxRequestDurationMs === undefined || stepStartedAt === undefined) return { kind: 'window', ms: windowMs };
  const settled = stepStartedAt.getTime() + maxRequestDurationMs;
  const open = Math.floor((at.getTime() - settled) / 1000) * 1000;
  if (open < 1000) return { kind: 'waiting', until: new Date(settled) };
  return { kind: 'window', ms: Math.min(windowMs, open) };
}

/** The histogram a latency preset reads: its source's, vLLM's when none is given. */
export function latencyFamily(type: LlmLatencyType, source: PresetSource | undefined): HistogramFamily {
  return LATENCY_FAMILIES[type][source ?? 'vllm'];
}
