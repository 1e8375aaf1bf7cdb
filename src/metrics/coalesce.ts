// Many ModelCanaries, few queries. Passes that ask the same provider the same question at the
// same instant (counts over one window ending at one time, totals at one time, one rendered
// query at one time) within a short gather window are answered by one call with every
// selector: the provider already puts every selector of a metric family into one query. With
// instants on whole seconds (the reconciler reads at whole seconds), passes that run together
// share their queries, so the cost grows with the number of distinct instants, not of canaries.
//
// Each caller keeps its own deadline: one that gives up is answered at once with its signal's
// reason and leaves the others' call running; the call is cancelled only when every caller has
// given up.

import type { Sample } from '../api/observation.ts';
import type { MetricsProvider, VersionSelector } from './provider.ts';

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

export class CoalescingProvider implements MetricsProvider {
  private readonly inner: MetricsProvider;
  private readonly gatherMs: number;
  private readonly timer: Gatherer;
  private readonly batches = new Map<string, Batch<unknown, unknown>>();

  constructor(inner: MetricsProvider, gatherMs = 50, timer: Gatherer = REAL_TIMER) {
    this.inner = inner;
    this.gatherMs = gatherMs;
    this.timer = timer;
  }

  counts(selectors: readonly VersionSelector[], windowMs: number, at: Date, signal?: AbortSignal): Promise<Map<string, Sample>> {
    return this.selected(`counts/${windowMs}/${at.getTime()}`, selectors, signal, (all, s) => this.inner.counts(all, windowMs, at, s));
  }

  totals(selectors: readonly VersionSelector[], at: Date, signal?: AbortSignal): Promise<Map<string, Sample>> {
    return this.selected(`totals/${at.getTime()}`, selectors, signal, (all, s) => this.inner.totals(all, at, s));
  }

  value(query: string, at: Date, signal?: AbortSignal): Promise<Sample> {
    return this.gather<undefined, Sample>(`value/${at.getTime()}/${query}`, undefined, signal, (_args, s) => this.inner.value(query, at, s));
  }

  /** A call for some selectors, joined with the others asking the same question; each gets its own answers. */
  private async selected(
    key: string,
    selectors: readonly VersionSelector[],
    signal: AbortSignal | undefined,
    ask: (all: VersionSelector[], signal: AbortSignal) => Promise<Map<string, Sample>>,
  ): Promise<Map<string, Sample>> {
    const all = await this.gather<readonly VersionSelector[], Map<string, Sample>>(key, selectors, signal, (lists, s) => {
      const unique = new Map<string, VersionSelector>();
      for (const list of lists) for (const selector of list) unique.set(selector.key, selector);
      return ask([...unique.values()], s);
    });
    return new Map(selectors.map((s) => [s.key, all.get(s.key) ?? { kind: 'noData', reason: 'no answer for this version' }]));
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
