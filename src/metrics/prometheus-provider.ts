// Evidence from Istio's standard metrics, batched: one query per metric family answers for
// every version of every ModelCanary whose selectors use the same label names, and the
// answer is split per version here. A thousand ModelCanaries cost three queries, not six
// thousand.

import type { Counts, Histogram, Sample } from '../api/observation.ts';
import type { MetricsProvider, VersionSelector } from './provider.ts';
import type { PrometheusClient, QueryResult, Series } from './prometheus-client.ts';
import { alternation, escapeString, promDuration, renderMatchers, type PresetQueries } from './promql.ts';

export interface IstioMetricsOptions {
  /** Which proxy's view to count; the destination sidecar sees every request the version served. */
  reporter?: 'destination' | 'source';
}

interface Group {
  labelNames: string[];
  selectors: VersionSelector[];
}

export class PrometheusMetricsProvider implements MetricsProvider {
  private readonly client: PrometheusClient;
  private readonly reporter: string;

  constructor(client: PrometheusClient, options: IstioMetricsOptions = {}) {
    this.client = client;
    this.reporter = options.reporter ?? 'destination';
  }

  counts(selectors: readonly VersionSelector[], windowMs: number, at: Date, signal?: AbortSignal): Promise<Map<string, Sample>> {
    return this.builtin(selectors, windowMs, at, signal);
  }

  totals(selectors: readonly VersionSelector[], at: Date, signal?: AbortSignal): Promise<Map<string, Sample>> {
    return this.builtin(selectors, undefined, at, signal);
  }

  /** Over a window (increase), or the counters' current sums (no window). */
  private async builtin(selectors: readonly VersionSelector[], windowMs: number | undefined, at: Date, signal: AbortSignal | undefined): Promise<Map<string, Sample>> {
    const answers = new Map<string, Sample>();
    await Promise.all(
      groupByLabelNames(selectors).map(async (group) => {
        const queries = builtinQueries(group, windowMs, this.reporter);
        const [requests, errors, buckets] = await Promise.all([
          this.client.query(queries.requests, at, signal),
          this.client.query(queries.errors, at, signal),
          this.client.query(queries.buckets, at, signal),
        ]);
        for (const [key, sample] of split(group, requests, errors, buckets, windowMs)) answers.set(key, sample);
      }),
    );
    return answers;
  }

  presetCounts(queries: PresetQueries, at: Date, signal?: AbortSignal): Promise<Sample> {
    return presetCountsFrom(this.client, queries, at, signal);
  }

  async value(query: string, at: Date, signal?: AbortSignal): Promise<Sample> {
    const result = await this.client.query(query, at, signal);
    switch (result.kind) {
      case 'error':
        return { kind: 'error', message: result.message };
      case 'scalar':
        return toValue(result.value);
      case 'vector': {
        const [only, ...more] = result.series;
        if (only === undefined) return { kind: 'noData', reason: 'the query returned no series' };
        if (more.length > 0) return { kind: 'error', message: `the query returned ${result.series.length} series; a check needs one number: aggregate it, e.g. sum(…)` };
        return toValue(only.value);
      }
    }
  }
}

/**
 * A preset's counts: each query answers one vector; missing requests (or buckets) mean the
 * exporter's series are not there, which `queries.missing` explains. A missing error counter is
 * zero errors: labelled counters appear only at their first increment.
 */
export async function presetCountsFrom(client: PrometheusClient, queries: PresetQueries, at: Date, signal?: AbortSignal): Promise<Sample> {
  const ask = (query: string | undefined): Promise<QueryResult | undefined> => (query === undefined ? Promise.resolve(undefined) : client.query(query, at, signal));
  const [requests, errors, buckets] = await Promise.all([ask(queries.requests), ask(queries.errors), ask(queries.buckets)]);
  const failed = [requests, errors, buckets].find((r) => r !== undefined && r.kind !== 'vector');
  if (failed !== undefined) return { kind: 'error', message: failed.kind === 'error' ? failed.message : 'expected an instant vector' };
  const series = (r: QueryResult | undefined): Series[] => (r?.kind === 'vector' ? r.series : []);
  const latency = buckets === undefined ? undefined : histogram(series(buckets).map((s) => ({ ...s, labels: { ...s.labels, le: scaleBound(s.labels.le ?? 'NaN', queries.boundScale) } })));
  if (buckets !== undefined && latency === undefined) return { kind: 'noData', reason: queries.missing };
  if (requests !== undefined && series(requests).length === 0) return { kind: 'noData', reason: queries.missing };
  const served = requests === undefined ? Math.max(0, Math.round(latency?.cumulative.at(-1) ?? 0)) : count(series(requests));
  // The endpoint picker counts an error of a request it never scheduled, which request_total does not hold.
  return { kind: 'counts', counts: { requests: served, errors: Math.min(served, count(series(errors))), latency } };
}

function scaleBound(le: string, scale: number): string {
  if (le === '+Inf' || scale === 1) return le;
  // Rounded so that 0.025 s is 25 ms exactly, not 25.000000000000004.
  return String(Number((Number(le) * scale).toPrecision(12)));
}

/** NaN is Prometheus's answer to 0/0 and to a quantile of no traffic: nothing measured, not a value. */
function toValue(value: number): Sample {
  return Number.isNaN(value) ? { kind: 'noData', reason: 'the query returned NaN (no traffic in the window?)' } : { kind: 'value', value };
}

export function groupByLabelNames(selectors: readonly VersionSelector[]): Group[] {
  const groups = new Map<string, Group>();
  for (const selector of selectors) {
    const labelNames = Object.keys(selector.labels).sort();
    const id = labelNames.join(',');
    const group = groups.get(id) ?? { labelNames, selectors: [] };
    group.selectors.push(selector);
    groups.set(id, group);
  }
  return [...groups.values()];
}

/**
 * The three queries of a group; each label is narrowed to the values its versions use. With a
 * window they count increase() over it; without one, the counters' current sums.
 */
export function builtinQueries(group: Group, windowMs: number | undefined, reporter: string): { requests: string; errors: string; buckets: string } {
  const narrow = group.labelNames.map((name) => `${name}=~"${escapeString(alternation(group.selectors.map((s) => s.labels[name] ?? '')))}"`);
  const selector = (extra: string[]): string => `{${[`reporter="${escapeString(reporter)}"`, ...extra, ...narrow].join(',')}}`;
  const by = group.labelNames.join(',');
  const over = (series: string): string => (windowMs === undefined ? series : `increase(${series}[${promDuration(windowMs)}])`);
  return {
    requests: `sum by (${by}) (${over(`istio_requests_total${selector([])}`)})`,
    errors: `sum by (${by}) (${over(`istio_requests_total${selector(['response_code=~"5.."'])}`)})`,
    buckets: `sum by (${by},le) (${over(`istio_request_duration_milliseconds_bucket${selector([])}`)})`,
  };
}

function split(group: Group, requests: QueryResult, errors: QueryResult, buckets: QueryResult, windowMs: number | undefined): Map<string, Sample> {
  const out = new Map<string, Sample>();
  const failed = [requests, errors, buckets].find((r) => r.kind !== 'vector');
  if (failed !== undefined) {
    const message = failed.kind === 'error' ? failed.message : 'expected an instant vector';
    for (const s of group.selectors) out.set(s.key, { kind: 'error', message });
    return out;
  }
  const id = (labels: Readonly<Record<string, string>>): string => JSON.stringify(group.labelNames.map((n) => labels[n] ?? ''));
  const byId = (result: QueryResult): Map<string, Series[]> => {
    const map = new Map<string, Series[]>();
    for (const series of result.kind === 'vector' ? result.series : []) map.set(id(series.labels), [...(map.get(id(series.labels)) ?? []), series]);
    return map;
  };
  const requestSeries = byId(requests);
  const errorSeries = byId(errors);
  const bucketSeries = byId(buckets);
  for (const selector of group.selectors) {
    const key = id(selector.labels);
    const served = requestSeries.get(key);
    if (served === undefined) {
      const when = windowMs === undefined ? '' : ` in the last ${promDuration(windowMs)}`;
      out.set(selector.key, { kind: 'noData', reason: `no istio_requests_total series for {${renderMatchers(selector.labels)}}${when}` });
      continue;
    }
    const counts: Counts = {
      requests: count(served),
      errors: count(errorSeries.get(key) ?? []),
      latency: histogram(bucketSeries.get(key) ?? []),
    };
    out.set(selector.key, { kind: 'counts', counts });
  }
  return out;
}

/** increase() extrapolates to the window's edges; a count of requests is still a whole number. */
function count(series: readonly Series[]): number {
  const total = series.reduce((sum, s) => sum + (Number.isFinite(s.value) ? s.value : 0), 0);
  return Math.max(0, Math.round(total));
}

function histogram(series: readonly Series[]): Histogram | undefined {
  if (series.length === 0) return undefined;
  const byBound = new Map<number, number>();
  for (const s of series) {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    if (!Number.isNaN(le)) byBound.set(le, (byBound.get(le) ?? 0) + (Number.isFinite(s.value) ? s.value : 0));
  }
  const bounds = [...byBound.keys()].filter((b) => Number.isFinite(b)).sort((a, b) => a - b);
  const infinite = byBound.get(Infinity);
  if (infinite === undefined) return undefined;
  // Not rounded: the engine's quantile must equal Prometheus's histogram_quantile on the same increase().
  return { bounds, cumulative: [...bounds.map((b) => byBound.get(b) ?? 0), infinite] };
}
