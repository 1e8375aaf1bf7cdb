// The operator's cap on rollouts in progress at once (--max-concurrent-rollouts): a rollout that
// is ready to start while the cap is reached waits, phase Waiting, and those that waited longest
// start first as rollouts end. The count comes from the controller's cache of ModelCanaries
// (their written phases) plus the starts granted here that the cache has not seen yet, so two
// rollouts starting at once cannot both take the last slot.

/** One ModelCanary as the cap sees it. */
export interface SlotCensusEntry {
  key: string;
  /** Traffic is split: Progressing, Paused or Failed. */
  active: boolean;
  /** When it began to wait for a slot (phase Waiting), if it does. */
  waitingSince?: string | undefined;
}

export type Admission = { admitted: true } | { admitted: false; active: number; max: number; position: number };

export interface Slots {
  /** May `key` start its rollout now? */
  admit(key: string): Admission;
}

/** No cap. */
export const UNLIMITED_SLOTS: Slots = { admit: () => ({ admitted: true }) };

/** A grant not yet seen as active in the cache is forgotten after this long (a start that failed). */
const GRANT_TTL_MS = 60_000;

export class RolloutSlots implements Slots {
  private readonly granted = new Map<string, number>();
  private readonly max: number;
  private readonly census: () => SlotCensusEntry[];
  private readonly now: () => number;

  constructor(max: number, census: () => SlotCensusEntry[], now: () => number = Date.now) {
    this.max = max;
    this.census = census;
    this.now = now;
  }

  admit(key: string): Admission {
    const entries = this.census();
    const now = this.now();
    const active = new Set(entries.filter((e) => e.active).map((e) => e.key));
    for (const [granted, at] of this.granted) {
      if (active.has(granted) || now - at > GRANT_TTL_MS) this.granted.delete(granted);
      else active.add(granted);
    }
    if (active.has(key)) return { admitted: true };
    // Those that waited longest go first; one that has not waited yet queues behind them all.
    const queue = entries
      .filter((e) => e.waitingSince !== undefined && !active.has(e.key))
      .sort((a, b) => (a.waitingSince ?? '').localeCompare(b.waitingSince ?? '') || a.key.localeCompare(b.key))
      .map((e) => e.key);
    const position = queue.includes(key) ? queue.indexOf(key) : queue.length;
    const free = this.max - active.size;
    if (position < free) {
      this.granted.set(key, now);
      return { admitted: true };
    }
    return { admitted: false, active: active.size, max: this.max, position: position + 1 };
  }
}
