// How people hear about rollouts, in our own terms: one method that carries one notification
// to one destination, once. Pacing, retries and giving up belong to the delivery queue
// (delivery.ts), which wraps any Notifier; a Notifier makes one attempt and says how it went.

import type { Notification, Severity } from '../api/status.ts';

export type { Notification, Severity } from '../api/status.ts';

/** How one attempt went. `retry: 'later'` is for what may pass (429, 5xx, a timeout); 'never' for what a person must fix. */
export type Delivery = { ok: true } | { ok: false; retry: 'later' | 'never'; problem: string; retryAfterMs?: number | undefined };

export interface Notifier {
  send(notification: Notification, signal: AbortSignal): Promise<Delivery>;
}

/** The do-nothing twin: for a controller with no destinations, and for tests that do not listen. */
export const NOP_NOTIFIER: Notifier = { send: () => Promise.resolve({ ok: true }) };

const RANK: Record<Severity, number> = { info: 0, warning: 1, error: 2 };

/** Whether a notification of `severity` reaches a destination that asks for at least `least`. */
export function reaches(severity: Severity, least: Severity): boolean {
  return RANK[severity] >= RANK[least];
}

/** The stricter of two minimum severities. */
export function stricter(a: Severity, b: Severity): Severity {
  return RANK[a] >= RANK[b] ? a : b;
}

/** Links a message may carry, rendered from the operator's templates. */
export interface Links {
  /** A Grafana dashboard (or any) URL template; {{namespace}}, {{name}} and {{model}} are substituted, URL-encoded. */
  dashboard?: string | undefined;
}

/**
 * The operator's dashboard template with {{namespace}}, {{name}} and {{model}} filled in, each
 * URL-encoded; undefined without a template, or when the result is not an http(s) URL.
 */
export function dashboardUrl(links: Links | undefined, n: Pick<Notification, 'namespace' | 'name' | 'model'>): string | undefined {
  if (links?.dashboard === undefined) return undefined;
  const values = { namespace: n.namespace, name: n.name, model: n.model };
  const url = links.dashboard.replace(/\{\{\s*(namespace|name|model)\s*\}\}/g, (_, key: keyof typeof values) => encodeURIComponent(values[key]));
  if (!URL.canParse(url)) return undefined;
  const { protocol } = new URL(url);
  return protocol === 'http:' || protocol === 'https:' ? url : undefined;
}

export function kubectlCommand(n: Pick<Notification, 'namespace' | 'name'>): string {
  return `kubectl describe modelcanary ${n.name} -n ${n.namespace}`;
}
