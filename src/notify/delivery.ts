// One queue per destination, around any Notifier: messages go out one at a time, in the order
// they were handed in, at most one per paceMs (Slack allows about one message a second per
// webhook). What may pass (429, 5xx, no answer) is tried again after Retry-After or a growing,
// jittered backoff, until giveUpAfterMs since the message was handed in; what a person must
// fix settles at once. A waiting message holds up the ones behind it, so that "promoted" never
// arrives before "advanced", and a 429 pauses the whole webhook, as Slack limits per webhook.
// Nothing here blocks or throws at the caller: the outcome comes back through `settled`.

import { formatDuration } from '../api/duration.ts';
import type { Notification } from '../api/status.ts';
import type { Delivery, Notifier } from './notifier.ts';

export type Outcome = { delivered: true } | { delivered: false; problem: string };

/** What happened to one attempt, for the controller's metrics. */
export type DeliveryOutcome = 'delivered' | 'retried' | 'rejected' | 'gaveUp';

export interface DeliveryOptions {
  /** Least time between the starts of two requests. */
  paceMs: number;
  /** A message not delivered this long after it was handed in is given up on. */
  giveUpAfterMs: number;
  /** The first retry's backoff; each further one doubles it, up to maxBackoffMs. */
  firstBackoffMs: number;
  maxBackoffMs: number;
  /** A Retry-After longer than this is cut to it. */
  maxRetryAfterMs: number;
  /** Each attempt is abandoned (and retried) after this long, whatever the notifier does. */
  attemptTimeoutMs: number;
  /** Messages held at most, the one being sent included; beyond it a new one settles at once, not delivered. */
  capacity: number;
  /** In [0, 1): the jitter of the backoff. */
  random: () => number;
  /** Milliseconds on a monotonic clock. */
  now: () => number;
  onOutcome: ((outcome: DeliveryOutcome) => void) | undefined;
}

const DEFAULTS: Omit<DeliveryOptions, 'random' | 'now' | 'onOutcome'> = {
  paceMs: 1000,
  giveUpAfterMs: 10 * 60_000,
  firstBackoffMs: 1000,
  maxBackoffMs: 60_000,
  maxRetryAfterMs: 5 * 60_000,
  attemptTimeoutMs: 15_000,
  capacity: 1000,
};

interface Waiting {
  notification: Notification;
  settled: (outcome: Outcome) => void;
  enqueuedAt: number;
  attempts: number;
}

export class DeliveryQueue {
  private readonly notifier: Notifier;
  private readonly options: DeliveryOptions;
  private readonly waiting: Waiting[] = [];
  private readonly stopping = new AbortController();
  /** No request starts before this time (pace, backoff, Retry-After). */
  private notBefore = -Infinity;
  private running = false;
  private wake: (() => void) | undefined;

  constructor(notifier: Notifier, options: Partial<DeliveryOptions> = {}) {
    this.notifier = notifier;
    // Field by field: an option given as undefined keeps its default.
    this.options = {
      paceMs: options.paceMs ?? DEFAULTS.paceMs,
      giveUpAfterMs: options.giveUpAfterMs ?? DEFAULTS.giveUpAfterMs,
      firstBackoffMs: options.firstBackoffMs ?? DEFAULTS.firstBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? DEFAULTS.maxBackoffMs,
      maxRetryAfterMs: options.maxRetryAfterMs ?? DEFAULTS.maxRetryAfterMs,
      attemptTimeoutMs: options.attemptTimeoutMs ?? DEFAULTS.attemptTimeoutMs,
      capacity: options.capacity ?? DEFAULTS.capacity,
      random: options.random ?? Math.random,
      now: options.now ?? (() => performance.now()),
      onOutcome: options.onOutcome,
    };
  }

  /** Messages held: waiting, or being sent. */
  get size(): number {
    return this.waiting.length;
  }

  /** Hands a message over; `settled` is called once with how it went, unless the queue is stopped first. */
  enqueue(notification: Notification, settled: (outcome: Outcome) => void): void {
    if (this.stopped()) return;
    if (this.waiting.length >= this.options.capacity) {
      this.report(settled, { delivered: false, problem: `queue full: ${this.options.capacity} notifications already wait for this destination` }, 'gaveUp');
      return;
    }
    this.waiting.push({ notification, settled, enqueuedAt: this.options.now(), attempts: 0 });
    if (!this.running) void this.run();
  }

  /**
   * Aborts the request in flight and settles nothing more. Messages still waiting are left
   * unsettled on purpose: they are still owed in the statuses, and a controller sends them again.
   */
  stop(): void {
    this.stopping.abort();
    this.wake?.();
  }

  private stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      for (let head = this.waiting[0]; head !== undefined; head = this.waiting[0]) {
        await this.sleep(this.notBefore - this.options.now());
        if (this.stopped()) return;
        const startedAt = this.options.now();
        const delivery = await this.attempt(head.notification);
        if (this.stopped()) return;
        head.attempts++;
        this.notBefore = startedAt + this.options.paceMs;
        this.judge(head, delivery);
      }
    } finally {
      this.running = false;
    }
  }

  private judge(head: Waiting, delivery: Delivery): void {
    if (delivery.ok) {
      this.finish({ delivered: true }, 'delivered');
      return;
    }
    if (delivery.retry === 'never') {
      this.finish({ delivered: false, problem: delivery.problem }, 'rejected');
      return;
    }
    const now = this.options.now();
    const wait = this.backoff(head.attempts, delivery.retryAfterMs);
    // Giving up now rather than at the deadline: no attempt could be made before it.
    if (now + wait - head.enqueuedAt > this.options.giveUpAfterMs) {
      const elapsed = formatDuration(now - head.enqueuedAt >= 1000 ? Math.round((now - head.enqueuedAt) / 1000) * 1000 : now - head.enqueuedAt);
      const attempts = head.attempts === 1 ? '1 attempt' : `${head.attempts} attempts`;
      this.finish({ delivered: false, problem: `gave up after ${attempts} in ${elapsed}: ${delivery.problem}` }, 'gaveUp');
      return;
    }
    this.notBefore = Math.max(this.notBefore, now + wait);
    this.emit('retried');
  }

  /** Retry-After when the destination gave one (capped), else 1 s, 2 s, 4 s … up to the cap, each ±20 %. */
  private backoff(attempts: number, retryAfterMs: number | undefined): number {
    if (retryAfterMs !== undefined) return Math.min(retryAfterMs, this.options.maxRetryAfterMs);
    const base = Math.min(this.options.firstBackoffMs * 2 ** (attempts - 1), this.options.maxBackoffMs);
    return Math.min(base * (0.8 + 0.4 * this.options.random()), this.options.maxBackoffMs);
  }

  /** One attempt, abandoned at its deadline or at stop even if the notifier ignores its signal. */
  private async attempt(notification: Notification): Promise<Delivery> {
    const { attemptTimeoutMs } = this.options;
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(attemptTimeoutMs)]);
    const abandoned = new Promise<Delivery>((resolve) => {
      signal.addEventListener('abort', () => { resolve({ ok: false, retry: 'later', problem: `no answer within ${attemptTimeoutMs} ms` }); }, { once: true });
    });
    try {
      return await Promise.race([this.notifier.send(notification, signal), abandoned]);
    } catch (error) {
      // A Notifier returns its failures; one that throws is treated as a failure that may pass. Its message may hold the URL.
      return { ok: false, retry: 'later', problem: `the notifier failed (${error instanceof Error ? error.name : 'unknown error'})` };
    }
  }

  private finish(outcome: Outcome, reported: DeliveryOutcome): void {
    const head = this.waiting.shift();
    if (head !== undefined) this.report(head.settled, outcome, reported);
  }

  private report(settled: (outcome: Outcome) => void, outcome: Outcome, reported: DeliveryOutcome): void {
    // A caller's callback that throws must not stop the queue for everyone behind it.
    try {
      settled(outcome);
    } catch {
      // the outcome was handed over; what the caller did with it is not the queue's concern
    }
    this.emit(reported);
  }

  private emit(outcome: DeliveryOutcome): void {
    try {
      this.options.onOutcome?.(outcome);
    } catch {
      // metrics are a side channel: never a reason to stop sending
    }
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}
