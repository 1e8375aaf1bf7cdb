// Istio's standard metrics read straight from an exporter's /metrics, for when no Prometheus
// runs (the demo without the prometheus binary). It scrapes on a timer, keeps a short history
// of the two families a built-in check needs, and answers counts() as the difference between
// two scrapes, with the same meaning as the Prometheus provider's increase() queries.

import type { Counts, Histogram, Sample } from '../api/observation.ts';
import { parseExposition, type ExpositionSample } from './exposition.ts';
import type { IstioMetricsOptions } from './prometheus-provider.ts';
import type { MetricsProvider, VersionSelector } from './provider.ts';
import { promDuration, renderMatchers } from './promql.ts';

const REQUESTS = 'istio_requests_total';
const BUCKETS = 'istio_request_duration_milliseconds_bucket';
/** PromQL's response_code=~"5..", which is anchored at both ends. */
const SERVER_ERROR = /^5..$/;
const FETCH_TIMEOUT_MS = 5000;

export interface ScrapingMetricsOptions extends IstioMetricsOptions {
  /** The exporter's endpoint, e.g. http://127.0.0.1:1234/metrics. */
  url: string;
  intervalMs?: number;
  /** How much history to keep; windows longer than this are measured from the oldest scrape. */
  retainMs?: number;
  now?: () => Date;
  fetchText?: (url: string) => Promise<string>;
}

interface Snapshot {
  time: number;
  /** By series identity (name and labels), so that two scrapes can be subtracted. */
  series: Map<string, ExpositionSample>;
}

export class ScrapingMetricsProvider implements MetricsProvider {
  private readonly url: string;
  private readonly reporter: string;
  private readonly intervalMs: number;
  private readonly retainMs: number;
  private readonly now: () => Date;
  private readonly fetchText: (url: string) => Promise<string>;
  /** Oldest first. */
  private snapshots: Snapshot[] = [];
  private lastFailure: { time: number; message: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Scrapes run one after another, so that snapshots are appended in time order. */
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;

  constructor(options: ScrapingMetricsOptions) {
    this.url = options.url;
    this.reporter = options.reporter ?? 'destination';
    this.intervalMs = options.intervalMs ?? 1000;
    this.retainMs = options.retainMs ?? 15 * 60 * 1000;
    this.now = options.now ?? (() => new Date());
    this.fetchText = options.fetchText ?? fetchWithTimeout;
  }

  start(): void {
    if (this.timer !== undefined) return;
    void this.scrapeNow();
    // A slow exporter must not pile up scrapes: skip a tick while one is still running.
    this.timer = setInterval(() => {
      if (this.pending === 0) void this.scrapeNow();
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One scrape, after any still running; it never rejects: a failure is remembered instead. */
  scrapeNow(): Promise<void> {
    this.pending++;
    this.queue = this.queue.then(() => this.scrape()).finally(() => this.pending--);
    return this.queue;
  }

  counts(selectors: readonly VersionSelector[], windowMs: number, at: Date): Promise<Map<string, Sample>> {
    const answer = (sample: (selector: VersionSelector) => Sample): Promise<Map<string, Sample>> =>
      Promise.resolve(new Map(selectors.map((s) => [s.key, sample(s)])));
    const window = this.window(windowMs, at.getTime());
    if (window.kind !== 'window') return answer(() => window);
    return answer((selector) => this.increase(selector, window.start, window.end, windowMs));
  }

  totals(selectors: readonly VersionSelector[], at: Date): Promise<Map<string, Sample>> {
    const end = this.newest(at.getTime());
    const sample = (selector: VersionSelector): Sample => ('kind' in end ? end : this.increase(selector, { time: 0, series: new Map() }, end, undefined));
    return Promise.resolve(new Map(selectors.map((s) => [s.key, sample(s)])));
  }

  value(): Promise<Sample> {
    return Promise.resolve({
      kind: 'error',
      message: "custom PromQL queries need Prometheus; this provider reads the mesh's counters directly (install prometheus: apt-get install -y prometheus)",
    });
  }

  private async scrape(): Promise<void> {
    const time = this.now().getTime();
    try {
      const samples = parseExposition(await this.fetchText(this.url));
      const series = new Map<string, ExpositionSample>();
      for (const sample of samples) {
        if (sample.name === REQUESTS || sample.name === BUCKETS) series.set(seriesId(sample), sample);
      }
      this.snapshots.push({ time, series });
      this.snapshots = this.snapshots.filter((s) => s.time >= time - this.retainMs);
    } catch (error) {
      this.lastFailure = { time, message: `scrape of ${this.url} failed: ${error instanceof Error ? error.message : String(error)}` };
    }
  }

  /** The newest scrape at or before `at`, or why it cannot be trusted. */
  private newest(at: number): Snapshot | Extract<Sample, { kind: 'error' }> {
    const end = this.snapshots.findLast((s) => s.time <= at);
    const failure = this.lastFailure !== undefined && this.lastFailure.time <= at ? this.lastFailure : undefined;
    if (end === undefined) {
      const none = this.snapshots.length === 0 ? `no scrape of ${this.url} yet` : `no scrape of ${this.url} at or before ${new Date(at).toISOString()}`;
      return { kind: 'error', message: failure === undefined ? none : `${none}; ${failure.message}` };
    }
    // The newest look at the exporter failed: what happened since the last good scrape is unknown.
    if (failure !== undefined && failure.time > end.time) return { kind: 'error', message: failure.message };
    return end;
  }

  /** The scrapes at the two ends of the window, or why there is no answer for anyone. */
  private window(windowMs: number, at: number): { kind: 'window'; start: Snapshot; end: Snapshot } | Extract<Sample, { kind: 'error' | 'noData' }> {
    const end = this.newest(at);
    if ('kind' in end) return end;
    // History shorter than the window: measure from the oldest scrape kept.
    const start = this.snapshots.findLast((s) => s.time <= at - windowMs) ?? this.snapshots[0] ?? end;
    if (start === end) {
      const reason = this.snapshots[0] === end ? 'only one scrape so far' : `no scrape of ${this.url} in the last ${promDuration(windowMs)}`;
      return { kind: 'noData', reason };
    }
    return { kind: 'window', start, end };
  }

  /** Counts between two scrapes; against an empty start, the counters' sums (totals). */
  private increase(selector: VersionSelector, start: Snapshot, end: Snapshot, windowMs: number | undefined): Sample {
    const matches = (sample: ExpositionSample, name: string): boolean =>
      sample.name === name && sample.labels.reporter === this.reporter && Object.entries(selector.labels).every(([label, value]) => sample.labels[label] === value);
    let served: number | undefined;
    let errors = 0;
    const buckets = new Map<number, number>();
    for (const [id, sample] of end.series) {
      if (matches(sample, REQUESTS)) {
        const grown = growth(sample.value, start.series.get(id)?.value);
        served = (served ?? 0) + grown;
        if (SERVER_ERROR.test(sample.labels.response_code ?? '')) errors += grown;
      } else if (matches(sample, BUCKETS)) {
        const le = sample.labels.le === '+Inf' ? Infinity : Number(sample.labels.le);
        if (!Number.isNaN(le)) buckets.set(le, (buckets.get(le) ?? 0) + growth(sample.value, start.series.get(id)?.value));
      }
    }
    if (served === undefined) {
      const when = windowMs === undefined ? '' : ` in the last ${promDuration(windowMs)}`;
      return { kind: 'noData', reason: `no ${REQUESTS} series for {${renderMatchers(selector.labels)}} at ${this.url}${when}` };
    }
    const counts: Counts = { requests: served, errors, latency: histogram(buckets) };
    return { kind: 'counts', counts };
  }
}

/**
 * A counter's increase between two scrapes. A series missing at the start was created inside
 * the window (the mesh creates series on a version's first request), so it counts from 0; a
 * counter that went down was reset, and counts its new value, as Prometheus's increase() does.
 */
function growth(end: number, start: number | undefined): number {
  if (!Number.isFinite(end)) return 0;
  if (start === undefined || !Number.isFinite(start) || end < start) return end;
  return end - start;
}

function histogram(buckets: ReadonlyMap<number, number>): Histogram | undefined {
  const total = buckets.get(Infinity);
  if (total === undefined) return undefined;
  const bounds = [...buckets.keys()].filter((b) => Number.isFinite(b)).sort((a, b) => a - b);
  return { bounds, cumulative: [...bounds.map((b) => buckets.get(b) ?? 0), total] };
}

function seriesId(sample: ExpositionSample): string {
  return JSON.stringify([sample.name, ...Object.entries(sample.labels).sort(([a], [b]) => (a < b ? -1 : 1))]);
}

async function fetchWithTimeout(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) }).catch((error: unknown) => {
    // fetch says only "fetch failed"; the reason (ECONNREFUSED, a timeout) is in its cause.
    const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
    throw new Error(`${error instanceof Error ? error.message : String(error)}${cause}`, { cause: error });
  });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status} ${response.statusText}`);
  }
  return response.text();
}
