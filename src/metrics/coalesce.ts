// Many ModelCanaries, few queries. Two ways of sharing:
//
// - Passes that ask the same provider the same question (counts over one window ending at one
//   instant, totals at one instant, one rendered query at one instant) within a short gather
//   window are answered by one call with every selector: the provider puts every selector of a
//   metric family into one query.
// - Answers are kept while their instant is recent, and a call for an instant asks, beside its
//   callers' versions, for every version asked about lately. The reconciler reads at shared grid
//   instants (every 10 s by default), so the first pass to read an instant fetches it for all
//   rollouts, and the passes that read it later in the same grid cell find their answers kept.
//   The cost grows with the number of distinct questions, not of canaries.
//
// Errors are never kept: the next caller asks again. Each caller keeps its own deadline: one
// that gives up is answered at once with its signal's reason and leaves the others' call
// running; the call is cancelled only when every caller has given up.

import { raced } from '../api/abort.ts';
import type { Sample } from '../api/observation.ts';
import { PRESETS_NEED_PROMQL, type MetricsProvider, type VersionSelector } from './provider.ts';
import type { PresetQueries } from './promql.ts';

interface Waiter<T> {
  take: (answer: T) => void;
  fail: (error: Error) => void;
  signal: AbortSignal | undefined;
}

interface Batch<A, T> {
  args: A[];
  waiters: Waiter<T>[];
}

/** Timers handed in, so tests can gather without waiting. */
export interface Gatherer {
  after(ms: number, run: () => void): void;
}

const REAL_TIMER: Gatherer = { after: (ms, run) => void setTimeout(run, ms) };

/** Answers to one question (one kind of read at one instant), per version asked. */
interface Kept {
  /** The instant the question reads, ms. */
  at: number;
  answers: Map<string, Sample>;
}

export interface CoalescingOptions {
  /** How long passes asking the same question are gathered into one call. Default 50 ms. */
  gatherMs?: number;
  timer?: Gatherer;
  /** Answers are kept while their instant is younger than this. Default 60 s. */
  keepMs?: number;
  /** A version asked about within this long is fetched with every call, for the passes still to come. Default 5 min. */
  rememberMs?: number;
  now?: () => number;
  /**
   * Counts over a window as the difference of the totals at its two ends, which the watches read
   * anyway (see `counts`). Off by default: a provider whose totals and counts are not one
   * counter's readings (a test's fake) would disagree with itself.
   */
  deriveCounts?: boolean;
}

export class CoalescingProvider implements MetricsProvider {
  private readonly inner: MetricsProvider;
  private readonly gatherMs: number;
  private readonly timer: Gatherer;
  private readonly keepMs: number;
  private readonly rememberMs: number;
  private readonly now: () => number;
  private readonly deriveCounts: boolean;
  private readonly batches = new Map<string, Batch<unknown, unknown>>();
  private readonly kept = new Map<string, Kept>();
  /** Versions asked about lately, by identity, with when they were last asked about. */
  private readonly known = new Map<string, { selector: VersionSelector; seen: number }>();
  /** Calls on their way, per question, with the versions each asked for. */
  private readonly flying = new Map<string, { asked: Set<string>; answer: Promise<Map<string, Sample>> }[]>();
  private swept = 0;

  constructor(inner: MetricsProvider, options: CoalescingOptions = {}) {
    this.inner = inner;
    this.gatherMs = options.gatherMs ?? 50;
    this.timer = options.timer ?? REAL_TIMER;
    this.keepMs = options.keepMs ?? 60_000;
    this.rememberMs = options.rememberMs ?? 300_000;
    this.now = options.now ?? Date.now;
    this.deriveCounts = options.deriveCounts ?? false;
  }

  /**
   * With deriveCounts, the requests of a window are the totals at its end less the totals at its
   * start: two questions every rollout shares with the watches (whose totals are read at the same
   * grid instants), instead of one more question per window length. The difference is exact
   * where increase() extrapolates. Where it cannot be trusted (a version without series at the
   * start, which may be new or may be a scrape gap; a counter that went down, a reset; an error;
   * other bucket bounds) the window is asked for with increase(), as without deriveCounts.
   */
  async counts(selectors: readonly VersionSelector[], windowMs: number, at: Date, signal?: AbortSignal): Promise<Map<string, Sample>> {
    const asked = (some: readonly VersionSelector[]): Promise<Map<string, Sample>> =>
      this.selected(`counts/${windowMs}/${at.getTime()}`, at, some, signal, (all, s) => this.inner.counts(all, windowMs, at, s));
    if (!this.deriveCounts) return asked(selectors);
    const [end, start] = await Promise.all([this.totals(selectors, at, signal), this.totals(selectors, new Date(at.getTime() - windowMs), signal)]);
    const answers = new Map<string, Sample>();
    const rest: VersionSelector[] = [];
    for (const selector of selectors) {
      const derived = difference(start.get(selector.key), end.get(selector.key));
      if (derived === undefined) rest.push(selector);
      else answers.set(selector.key, derived);
    }
    if (rest.length > 0) for (const [key, sample] of await asked(rest)) answers.set(key, sample);
    return answers;
  }

  totals(selectors: readonly VersionSelector[], at: Date, signal?: AbortSignal): Promise<Map<string, Sample>> {
    return this.selected(`totals/${at.getTime()}`, at, selectors, signal, (all, s) => this.inner.totals(all, at, s));
  }

  /** LLM presets: passed through, one canary's queries at a time (docs/llm.md). */
  presetCounts(queries: PresetQueries, at: Date, signal?: AbortSignal): Promise<Sample> {
    if (this.inner.presetCounts === undefined) return Promise.resolve({ kind: 'error', message: PRESETS_NEED_PROMQL });
    return this.inner.presetCounts(queries, at, signal);
  }

  async value(query: string, at: Date, signal?: AbortSignal): Promise<Sample> {
    const key = `value/${at.getTime()}/${query}`;
    this.sweep();
    const kept = this.kept.get(key)?.answers.get(query);
    if (kept !== undefined) return kept;
    return this.gather<undefined, Sample>(key, undefined, signal, async (_args, s) => {
      const sample = await this.inner.value(query, at, s);
      if (sample.kind !== 'error') this.keep(key, at, new Map([[query, sample]]));
      return sample;
    });
  }

  /** A call for some selectors, joined with the others asking the same question; each gets its own answers. */
  private async selected(
    key: string,
    at: Date,
    selectors: readonly VersionSelector[],
    signal: AbortSignal | undefined,
    ask: (all: VersionSelector[], signal: AbortSignal) => Promise<Map<string, Sample>>,
  ): Promise<Map<string, Sample>> {
    this.sweep();
    const now = this.now();
    for (const selector of selectors) this.known.set(identity(selector), { selector, seen: now });
    const kept = this.kept.get(key)?.answers;
    let missing = selectors.filter((s) => kept?.get(identity(s)) === undefined);
    if (kept !== undefined && missing.length === 0) return answersFor(selectors, kept);
    // A call already on its way for this question that asked for them: wait for it, do not ask again.
    const flying = (this.flying.get(key) ?? []).filter((f) => missing.some((s) => f.asked.has(identity(s))));
    missing = missing.filter((s) => !flying.some((f) => f.asked.has(identity(s))));
    const calls = flying.map((f) => raced(f.answer, signal));
    if (missing.length > 0) calls.push(this.gather<readonly VersionSelector[], Map<string, Sample>>(key, missing, signal, (lists, s) => this.fly(key, at, lists, s, ask)));
    const merged = new Map(kept ?? []);
    for (const answers of await Promise.all(calls)) for (const [id, sample] of answers) merged.set(id, sample);
    return answersFor(selectors, merged);
  }

  /** One call for the gathered callers' versions and every version asked about lately, kept as it flies and once answered. */
  private async fly(
    key: string,
    at: Date,
    lists: (readonly VersionSelector[])[],
    signal: AbortSignal,
    ask: (all: VersionSelector[], signal: AbortSignal) => Promise<Map<string, Sample>>,
  ): Promise<Map<string, Sample>> {
    const unique = new Map<string, VersionSelector>();
    for (const list of lists) for (const selector of list) unique.set(identity(selector), selector);
    // Every version asked about lately comes along, for the passes that read this instant later;
    // none whose name (key) a caller uses with other labels now, none already answered or asked.
    const names = new Set([...unique.values()].map((v) => v.key));
    const already = this.kept.get(key)?.answers;
    const inFlight = this.flying.get(key) ?? [];
    // Only for an instant already past: the grid's instants are, while a start reads the next
    // whole second (the reconciler's preflight), which no other rollout will ask about.
    const shared = at.getTime() <= this.now();
    for (const [id, { selector }] of shared ? this.known : []) {
      if (names.has(selector.key) || already?.get(id) !== undefined || inFlight.some((f) => f.asked.has(id))) continue;
      unique.set(id, selector);
    }
    const asked = [...unique.values()];
    const answer = (async (): Promise<Map<string, Sample>> => {
      const answers = await ask(asked, signal);
      const byIdentity = new Map<string, Sample>();
      const all = new Map<string, Sample>();
      for (const selector of asked) {
        const sample = answers.get(selector.key);
        if (sample === undefined) continue;
        all.set(identity(selector), sample);
        // Errors are not kept: the next caller asks again.
        if (sample.kind !== 'error') byIdentity.set(identity(selector), sample);
      }
      this.keep(key, at, byIdentity);
      return all;
    })();
    const flight = { asked: new Set(unique.keys()), answer };
    this.flying.set(key, [...inFlight, flight]);
    try {
      return await answer;
    } finally {
      const left = (this.flying.get(key) ?? []).filter((f) => f !== flight);
      if (left.length === 0) this.flying.delete(key);
      else this.flying.set(key, left);
    }
  }

  private keep(key: string, at: Date, answers: Map<string, Sample>): void {
    if (this.now() - at.getTime() > this.keepMs) return;
    const entry = this.kept.get(key) ?? { at: at.getTime(), answers: new Map<string, Sample>() };
    for (const [id, sample] of answers) entry.answers.set(id, sample);
    this.kept.set(key, entry);
  }

  /** Old instants and versions nobody asked about lately are let go, at most once a second. */
  private sweep(): void {
    const now = this.now();
    if (now - this.swept < 1000) return;
    this.swept = now;
    for (const [key, entry] of this.kept) if (now - entry.at > this.keepMs) this.kept.delete(key);
    for (const [id, entry] of this.known) if (now - entry.seen > this.rememberMs) this.known.delete(id);
  }

  private gather<A, T>(key: string, arg: A, signal: AbortSignal | undefined, ask: (args: A[], signal: AbortSignal) => Promise<T>): Promise<T> {
    if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
    return new Promise<T>((take, fail) => {
      let batch = this.batches.get(key) as Batch<A, T> | undefined;
      if (batch === undefined) {
        const fresh: Batch<A, T> = { args: [], waiters: [] };
        batch = fresh;
        this.batches.set(key, fresh as Batch<unknown, unknown>);
        this.timer.after(this.gatherMs, () => {
          this.batches.delete(key);
          this.run(fresh, ask);
        });
      }
      batch.args.push(arg);
      batch.waiters.push({ take, fail, signal });
      signal?.addEventListener(
        'abort',
        () => {
          fail(signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
        },
        { once: true },
      );
    });
  }

  private run<A, T>(batch: Batch<A, T>, ask: (args: A[], signal: AbortSignal) => Promise<T>): void {
    const live = batch.waiters.filter((w) => w.signal?.aborted !== true);
    if (live.length === 0) return;
    // The call is cancelled only once every caller has given up.
    const everyone = new AbortController();
    let waiting = live.length;
    for (const w of live) {
      w.signal?.addEventListener(
        'abort',
        () => {
          if (--waiting === 0) everyone.abort(new Error('every caller gave up'));
        },
        { once: true },
      );
    }
    ask(batch.args, everyone.signal).then(
      (answer) => {
        for (const w of live) w.take(answer);
      },
      (error: unknown) => {
        for (const w of live) w.fail(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }
}

/** A version's name with its labels: a spec edit that changes the labels is another version. */
function identity(selector: VersionSelector): string {
  return `${selector.key}\u0000${JSON.stringify(Object.entries(selector.labels).sort(([a], [b]) => a.localeCompare(b)))}`;
}

function answersFor(selectors: readonly VersionSelector[], answers: Map<string, Sample>): Map<string, Sample> {
  return new Map(selectors.map((s) => [s.key, answers.get(identity(s)) ?? { kind: 'noData', reason: 'no answer for this version' }]));
}

/** The counts between two readings of a version's counters, or undefined where the difference cannot be trusted. */
function difference(start: Sample | undefined, end: Sample | undefined): Sample | undefined {
  // No series at the end: the version has served nothing, in this window or before.
  if (end?.kind === 'noData') return end;
  if (start?.kind !== 'counts' || end?.kind !== 'counts') return undefined;
  const requests = end.counts.requests - start.counts.requests;
  const errors = end.counts.errors - start.counts.errors;
  if (requests < 0 || errors < 0) return undefined;
  const before = start.counts.latency;
  const after = end.counts.latency;
  if (before === undefined && after === undefined) return { kind: 'counts', counts: { requests, errors } };
  if (before === undefined || after === undefined) return undefined;
  if (before.bounds.length !== after.bounds.length || before.bounds.some((b, i) => b !== after.bounds[i]) || before.cumulative.length !== after.cumulative.length) return undefined;
  const cumulative = after.cumulative.map((c, i) => c - (before.cumulative[i] ?? 0));
  if (cumulative.some((c) => c < 0)) return undefined;
  return { kind: 'counts', counts: { requests, errors, latency: { bounds: after.bounds, cumulative } } };
}
