// Test hooks for what goes wrong between a controller and a real API server: watches that end
// (at the server's request timeout, or when a connection breaks), writes that lose a race or
// fail, and a slow server.

export type WatchDrop = 'close' | 'reset';

export interface Faults {
  /**
   * Ends every open watch now and returns how many. 'close' ends the response cleanly, as a
   * server does at its request timeout (clients re-watch from their last resourceVersion);
   * 'reset' breaks the connection, as a network failure does (clients see an error).
   */
  dropWatches(how?: WatchDrop): number;
  /** Ends every open watch every `ms` milliseconds until `reset()`; 0 stops. */
  dropWatchesEvery(ms: number, how?: WatchDrop): void;
  /** Fails the next `count` writes (create, update, patch, delete) with 409 Conflict or 500 InternalError. */
  failNextWrites(count: number, code: 409 | 500): void;
  /**
   * Fails each write with probability `share` until reset(), drawing from `random` (handed in,
   * so a test can seed it): the steady background of conflicts a busy cluster produces.
   */
  failShareOfWrites(share: number, code: 409 | 500, random: () => number): void;
  /**
   * The next `count` events of `kind` (such as ModelCanary) reach no watch, while the write
   * itself succeeds: an event lost for good, as after a bug or a partition that the client's
   * resourceVersion bookkeeping did not notice. Only a re-list finds the change.
   */
  loseWatchEvents(kind: string, count: number): void;
  /** Delays every response by `ms` milliseconds; 0 removes the delay. */
  setLatency(ms: number): void;
  /**
   * Forgets the watch history, as etcd compaction does: a watch that resumes from any earlier
   * resourceVersion gets 410 Gone and must list again.
   */
  compact(): void;
  /** Removes every fault. */
  reset(): void;
}

/** The sandbox's side of the hooks. */
export interface FaultState {
  latencyMs(): number;
  /** The failure code for this write, if one is pending. */
  takeWriteFailure(): 409 | 500 | undefined;
}

export function createFaults(hooks: { dropWatches: (how: WatchDrop) => number; compact: () => void; loseWatchEvents: (kind: string, count: number) => void }): Faults & FaultState {
  let latency = 0;
  let failures: { remaining: number; code: 409 | 500 } = { remaining: 0, code: 500 };
  let shared: { share: number; code: 409 | 500; random: () => number } | undefined;
  let timer: NodeJS.Timeout | undefined;
  const stopTimer = (): void => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  };
  return {
    dropWatches: (how = 'close') => hooks.dropWatches(how),
    dropWatchesEvery: (ms, how = 'close') => {
      stopTimer();
      if (ms > 0) {
        timer = setInterval(() => hooks.dropWatches(how), ms);
        timer.unref();
      }
    },
    failNextWrites: (count, code) => {
      failures = { remaining: Math.max(0, Math.trunc(count)), code };
    },
    failShareOfWrites: (share, code, random) => {
      shared = { share: Math.min(1, Math.max(0, share)), code, random };
    },
    loseWatchEvents: (kind, count) => {
      hooks.loseWatchEvents(kind, count);
    },
    setLatency: (ms) => {
      latency = Math.max(0, ms);
    },
    compact: () => {
      hooks.compact();
    },
    reset: () => {
      stopTimer();
      latency = 0;
      failures = { remaining: 0, code: 500 };
      shared = undefined;
    },
    latencyMs: () => latency,
    takeWriteFailure: () => {
      if (failures.remaining <= 0) return shared !== undefined && shared.random() < shared.share ? shared.code : undefined;
      failures.remaining -= 1;
      return failures.code;
    },
  };
}
