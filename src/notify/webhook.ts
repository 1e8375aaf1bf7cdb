// The generic JSON webhook: our own document (apiVersion modelcanary.io/notification/v1), for
// receivers that are programs rather than people.

import type { Notification } from '../api/status.ts';
import { isTransient, JsonEndpoint, type PostResult } from './http.ts';
import { dashboardUrl, kubectlCommand, type Delivery, type Links, type Notifier } from './notifier.ts';

export const WEBHOOK_API_VERSION = 'modelcanary.io/notification/v1';

export interface WebhookMetric {
  name: string;
  verdict: string;
  stable: string;
  canary: string;
  stableValue: number | null;
  canaryValue: number | null;
  bound: string;
  reason: string;
}

export interface WebhookBody {
  apiVersion: typeof WEBHOOK_API_VERSION;
  kind: 'ModelCanaryNotification';
  id: string;
  event: Notification['kind'];
  severity: Notification['severity'];
  time: string;
  modelCanary: { namespace: string; name: string };
  model: string;
  stable: { version: string };
  canary: { version: string; weight: number };
  step: { number: number; of: number };
  phase: Notification['phase'];
  summary: string;
  reason: string;
  metrics: WebhookMetric[];
  links: { dashboard?: string; kubectl: string };
}

/** The notification as the generic webhook sends it: plain strings, for JSON consumers (nothing escaped). */
export function webhookBody(n: Notification, links?: Links): WebhookBody {
  const dashboard = dashboardUrl(links, n);
  return {
    apiVersion: WEBHOOK_API_VERSION,
    kind: 'ModelCanaryNotification',
    id: n.id,
    event: n.kind,
    severity: n.severity,
    time: n.time,
    modelCanary: { namespace: n.namespace, name: n.name },
    model: n.model,
    stable: { version: n.stableVersion },
    canary: { version: n.canaryVersion, weight: n.weight },
    step: { number: n.step, of: n.steps },
    phase: n.phase,
    summary: n.summary,
    reason: n.reason,
    metrics: n.metrics.map((m) => ({
      name: m.name,
      verdict: m.verdict,
      stable: m.stable,
      canary: m.canary,
      stableValue: m.stableValue ?? null,
      canaryValue: m.canaryValue ?? null,
      bound: m.bound,
      reason: m.reason,
    })),
    links: dashboard === undefined ? { kubectl: kubectlCommand(n) } : { dashboard, kubectl: kubectlCommand(n) },
  };
}

export interface WebhookNotifierOptions {
  url: string;
  links?: Links | undefined;
  timeoutMs?: number | undefined;
}

export class WebhookNotifier implements Notifier {
  private readonly endpoint: JsonEndpoint;
  private readonly links: Links | undefined;

  constructor(options: WebhookNotifierOptions) {
    this.endpoint = new JsonEndpoint(options.url, 'the webhook', options.timeoutMs);
    this.links = options.links;
  }

  async send(notification: Notification, signal: AbortSignal): Promise<Delivery> {
    return judgeWebhookAnswer(await this.endpoint.post(webhookBody(notification, this.links), signal, { 'Idempotency-Key': notification.id }));
  }
}

/** How a receiver's answer reads: 2xx delivered; what may pass (408, 425, 429, 5xx) later; any other refusal is for a person to fix. */
function judgeWebhookAnswer(result: PostResult): Delivery {
  if (!result.answered) return { ok: false, retry: result.retry, problem: result.problem };
  const { status, retryAfterMs } = result;
  if (status >= 200 && status < 300) return { ok: true };
  if (isTransient(status)) return { ok: false, retry: 'later', problem: `the webhook answered ${status}`, retryAfterMs };
  return { ok: false, retry: 'never', problem: `the webhook answered ${status}: ${webhookFix(status)}` };
}

function webhookFix(status: number): string {
  if (status >= 300 && status < 400) return 'a redirect, which is not followed; put the final URL in the Secret';
  if (status === 401 || status === 403) return 'it refused the request; check the URL (and any token in it) in the Secret';
  if (status === 404 || status === 410) return 'nothing receives notifications at that URL; check the URL in the Secret';
  if (status === 413) return 'the notification is too large for the receiver; raise its request size limit';
  return `it refused the notification; check what the receiver expects (a POST of JSON, apiVersion ${WEBHOOK_API_VERSION})`;
}
