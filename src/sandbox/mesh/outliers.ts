// Envoy's outlier detection for one upstream cluster, consecutive-error kinds only, as
// envoyproxy/envoy source/common/upstream/outlier_detection_impl.cc does it:
//
// - Each response code is put to its host's monitor. A 5xx adds to the consecutive-5xx count
//   (a 502/503/504 also to the consecutive-gateway-failure count); anything else zeroes both.
//   A connection failure counts as a 503, a timeout as a 504 (Istio does not split local-origin
//   errors). The count reaching the threshold *exactly* is a detection.
// - A detection of a host already ejected does nothing (and leaves its count climbing). Else
//   the detected_* counter grows, the count is zeroed, and the host is ejected if
//   100 × (ejected + 1) / hosts ≤ max_ejection_percent — not rounded, and with no exception for
//   the first host since Envoy 1.28 (check_mep_on_first_eject; always_eject_one_host, 1.31,
//   restores it, and Istio does not set it) — else ejections_overflow grows. An ejection
//   counts in ejections_enforced_total and enforced_* only when the kind is enforced.
// - An ejection lasts min(base_ejection_time × multiplier, max_ejection_time); the multiplier
//   grows by one at each ejection (while multiplier × base < max + base).
// - Every `interval` from the detector's creation, a sweep returns the hosts whose time is up
//   (zeroing their counts), then takes one off the multiplier of every host that is in service
//   and was returned at least an interval ago.
//
// Time is handed in: sweeps due by then run first, so the outcome is the same as with Envoy's
// timer. Success-rate and failure-percentage detection are left out: Istio enforces neither,
// and they need five hosts or more.

import type { OutlierDetection } from './policy.ts';

export type Detection = 'consecutive5xx' | 'consecutiveGatewayFailure';

/** The detector's stats, named as Envoy names them under cluster.<name>.outlier_detection. */
export interface OutlierStats {
  ejections_active: number;
  ejections_enforced_total: number;
  ejections_overflow: number;
  ejections_detected_consecutive_5xx: number;
  ejections_enforced_consecutive_5xx: number;
  ejections_detected_consecutive_gateway_failure: number;
  ejections_enforced_consecutive_gateway_failure: number;
}

interface HostMonitor {
  consecutive5xx: number;
  consecutiveGatewayFailure: number;
  ejected: boolean;
  /** Envoy's ejectTimeBackoff: how many base times the next ejection lasts. */
  multiplier: number;
  lastEjection: number | undefined;
  lastUnejection: number | undefined;
}

const GATEWAY_ERRORS = new Set([502, 503, 504]);

export class OutlierDetector {
  private readonly monitors = new Map<string, HostMonitor>();
  private readonly counters: OutlierStats = {
    ejections_active: 0,
    ejections_enforced_total: 0,
    ejections_overflow: 0,
    ejections_detected_consecutive_5xx: 0,
    ejections_enforced_consecutive_5xx: 0,
    ejections_detected_consecutive_gateway_failure: 0,
    ejections_enforced_consecutive_gateway_failure: 0,
  };
  private nextSweep: number;
  readonly config: OutlierDetection;

  /** `counters`: where a replaced detector of the same cluster left its counters. */
  constructor(config: OutlierDetection, hosts: readonly string[], now: number, counters?: OutlierStats) {
    this.config = config;
    if (counters !== undefined) Object.assign(this.counters, counters, { ejections_active: 0 });
    this.nextSweep = now + config.intervalMs;
    this.setHosts(hosts);
  }

  /** Hosts added get a fresh monitor; hosts removed take their ejection with them. */
  setHosts(hosts: readonly string[]): void {
    for (const host of hosts) if (!this.monitors.has(host)) this.monitors.set(host, { consecutive5xx: 0, consecutiveGatewayFailure: 0, ejected: false, multiplier: 0, lastEjection: undefined, lastUnejection: undefined });
    for (const host of [...this.monitors.keys()]) if (!hosts.includes(host)) this.monitors.delete(host);
  }

  isEjected(host: string, now: number): boolean {
    this.advance(now);
    return this.monitors.get(host)?.ejected ?? false;
  }

  stats(now: number): OutlierStats {
    this.advance(now);
    return { ...this.counters, ejections_active: this.active() };
  }

  /** An HTTP response code from `host`, or what a local-origin failure counts as (503 refused, 504 timed out). */
  report(host: string, code: number, now: number): void {
    this.advance(now);
    const monitor = this.monitors.get(host);
    if (monitor === undefined) return;
    if (code < 500 || code >= 600) {
      monitor.consecutive5xx = 0;
      monitor.consecutiveGatewayFailure = 0;
      return;
    }
    // Gateway failures are looked at first, as in Envoy's putHttpResponseCode.
    if (GATEWAY_ERRORS.has(code)) {
      if (++monitor.consecutiveGatewayFailure === this.config.consecutiveGatewayFailure) this.detected(monitor, 'consecutiveGatewayFailure', now);
    } else monitor.consecutiveGatewayFailure = 0;
    if (++monitor.consecutive5xx === this.config.consecutive5xx) this.detected(monitor, 'consecutive5xx', now);
  }

  private active(): number {
    let count = 0;
    for (const monitor of this.monitors.values()) if (monitor.ejected) count++;
    return count;
  }

  private detected(monitor: HostMonitor, kind: Detection, now: number): void {
    if (monitor.ejected) return;
    if (kind === 'consecutive5xx') this.counters.ejections_detected_consecutive_5xx++;
    else this.counters.ejections_detected_consecutive_gateway_failure++;
    this.eject(monitor, kind, now);
    if (kind === 'consecutive5xx') monitor.consecutive5xx = 0;
    else monitor.consecutiveGatewayFailure = 0;
  }

  private eject(monitor: HostMonitor, kind: Detection, now: number): void {
    const maxPercent = Math.min(100, this.config.maxEjectionPercent);
    const ejectedPercent = (100 * (this.active() + 1)) / this.monitors.size;
    if (ejectedPercent > maxPercent) {
      this.counters.ejections_overflow++;
      return;
    }
    const enforced = kind === 'consecutive5xx' ? this.config.enforcing5xx : this.config.enforcingGatewayFailure;
    if (!enforced) return;
    this.counters.ejections_enforced_total++;
    if (kind === 'consecutive5xx') this.counters.ejections_enforced_consecutive_5xx++;
    else this.counters.ejections_enforced_consecutive_gateway_failure++;
    monitor.ejected = true;
    monitor.lastEjection = now;
    if (monitor.multiplier * this.config.baseEjectionMs < this.config.maxEjectionMs + this.config.baseEjectionMs) monitor.multiplier++;
  }

  /** Runs the interval sweeps due by `now`, each at its own time. */
  private advance(now: number): void {
    while (this.nextSweep <= now) {
      this.sweep(this.nextSweep);
      this.nextSweep += this.config.intervalMs;
    }
  }

  private sweep(at: number): void {
    const { baseEjectionMs, maxEjectionMs, intervalMs } = this.config;
    for (const monitor of this.monitors.values()) {
      if (!monitor.ejected || monitor.lastEjection === undefined) continue;
      if (Math.min(baseEjectionMs * monitor.multiplier, maxEjectionMs) <= at - monitor.lastEjection) {
        monitor.ejected = false;
        monitor.consecutive5xx = 0;
        monitor.consecutiveGatewayFailure = 0;
        monitor.lastUnejection = at;
      }
    }
    for (const monitor of this.monitors.values()) {
      if (monitor.ejected || monitor.lastUnejection === undefined || at - monitor.lastUnejection < intervalMs) continue;
      if (monitor.multiplier > 0) monitor.multiplier--;
    }
  }
}
