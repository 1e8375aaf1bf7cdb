// Delivery of what status.outbox owes. The reconciler writes a notification into the status
// together with its transition (the commit point), hands it here after the write, and removes
// it from the status once it has settled: delivered everywhere, refused for a reason a person
// must fix, or given up on. A controller that dies between the write and the send finds it in
// the status again and sends it then; a notification handed over twice in one process is sent
// once. Nothing here blocks a reconcile: sending happens on queues of its own.

import type { NotificationTarget } from '../api/modelcanary.ts';
import type { Notification, Severity } from '../api/status.ts';
import { DeliveryQueue, type DeliveryOptions } from '../notify/delivery.ts';
import { reaches, stricter, type Links, type Notifier } from '../notify/notifier.ts';
import { SlackNotifier } from '../notify/slack.ts';
import { WebhookNotifier } from '../notify/webhook.ts';
import { isUnder, redact } from '../metrics/endpoints.ts';
import type { Logger } from './reconciler.ts';

export type Format = 'slack' | 'webhook';

/** A destination the operator defined (modelcanary run --notify). */
export interface Destination {
  name: string;
  format: Format;
  /** The URL itself (the demo, tests) or the Secret whose key "url" holds it. */
  url: { value: string } | { secret: { namespace: string; name: string } };
  /** The least severity sent here, whatever a ModelCanary asks. */
  least: Severity;
  /** Used by ModelCanaries that leave spec.notifications out. */
  isDefault: boolean;
}

/** What the reconciler needs of delivery. */
export interface NotificationOutbox {
  /** Whether a notification of this severity goes anywhere: nothing is owed otherwise. */
  wants(targets: readonly NotificationTarget[] | undefined, severity: Severity): boolean;
  /** Hands owed notifications over and returns at once; one handed over before is not sent again. */
  post(targets: readonly NotificationTarget[] | undefined, owed: readonly Notification[]): void;
  /** Those of `ids` that have settled, each with the problems of its delivery (none: delivered everywhere). */
  settled(ids: readonly string[]): Map<string, string[]>;
}

export type UrlResult = { ok: true; url: string } | { ok: false; problem: string };

export interface OutboxOptions {
  destinations: readonly Destination[];
  /** Base URLs a ModelCanary's own generic webhook may point under. */
  allowedWebhooks: readonly string[];
  links?: Links | undefined;
  /** Reads key "url" of a Secret; `consentRequired` when a ModelCanary named it. */
  readUrl(namespace: string, name: string, consentRequired: boolean): Promise<UrlResult>;
  /** Told when a ModelCanary's notification settled, so that its status is tidied soon. */
  onSettled(key: string): void;
  onOutcome?: (destination: string, outcome: 'delivered' | 'retried' | 'rejected' | 'gaveUp') => void;
  delivery?: Partial<DeliveryOptions> | undefined;
  log: Logger;
  /** Builds the notifier of a destination; tests hand in their own. */
  notifierFor?: (format: Format, url: string, links: Links | undefined) => Notifier;
}

/** Slack's incoming webhooks live here; a team's own Slack webhook must, unless the operator allowed more. */
export const SLACK_WEBHOOKS = 'https://hooks.slack.com/';

interface Tracked {
  pending: number;
  problems: string[];
  settledAt?: number | undefined;
}

interface Resolved {
  label: string;
  format: Format;
  url: string;
  least: Severity;
}

const URL_TTL_MS = 5 * 60_000;
const URL_RETRY_MS = 10_000;
const FORGET_AFTER_MS = 60 * 60_000;

export class Outbox implements NotificationOutbox {
  private readonly options: OutboxOptions;
  private readonly tracked = new Map<string, Tracked>();
  private readonly queues = new Map<string, DeliveryQueue>();
  private readonly urls = new Map<string, { result: UrlResult; at: number }>();
  private stopped = false;

  constructor(options: OutboxOptions) {
    this.options = options;
  }

  wants(targets: readonly NotificationTarget[] | undefined, severity: Severity): boolean {
    if (targets === undefined) return this.options.destinations.some((d) => d.isDefault && reaches(severity, d.least));
    return targets.some((t) => {
      if (t.secretRef !== undefined) return reaches(severity, t.severity ?? 'info');
      const destination = this.options.destinations.find((d) => d.name === t.destination);
      // A destination that does not exist is still "wanted": its delivery settles with the problem, which reaches the status.
      return destination === undefined || reaches(severity, stricter(destination.least, t.severity ?? 'info'));
    });
  }

  post(targets: readonly NotificationTarget[] | undefined, owed: readonly Notification[]): void {
    if (this.stopped) return;
    this.forgetOld();
    for (const notification of owed) {
      if (this.tracked.has(notification.id)) continue;
      const tracked: Tracked = { pending: 1, problems: [] };
      this.tracked.set(notification.id, tracked);
      void this.dispatch(targets, notification, tracked);
    }
  }

  settled(ids: readonly string[]): Map<string, string[]> {
    const done = new Map<string, string[]>();
    for (const id of ids) {
      const tracked = this.tracked.get(id);
      if (tracked?.settledAt !== undefined) done.set(id, tracked.problems);
    }
    return done;
  }

  /** Resolves once everything handed over has settled, or at the deadline: for a short-lived controller (the demo) to finish its news. */
  async idle(deadlineMs: number): Promise<boolean> {
    const until = Date.now() + deadlineMs;
    while (Date.now() < until) {
      if ([...this.tracked.values()].every((t) => t.settledAt !== undefined)) return true;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return false;
  }

  /** Stops every queue: what is not sent yet stays owed in the statuses, for the next leader. */
  stop(): void {
    this.stopped = true;
    for (const queue of this.queues.values()) queue.stop();
  }

  private async dispatch(targets: readonly NotificationTarget[] | undefined, notification: Notification, tracked: Tracked): Promise<void> {
    const key = `${notification.namespace}/${notification.name}`;
    const settleOne = (): void => {
      tracked.pending--;
      if (tracked.pending > 0 || this.stopped) return;
      tracked.settledAt = Date.now();
      this.options.onSettled(key);
    };
    let resolved: (Resolved | { problem: string })[];
    try {
      resolved = await this.resolve(targets, notification.namespace);
    } catch (error) {
      resolved = [{ problem: `could not read the destinations: ${(error as Error).message}` }];
    }
    for (const target of resolved) {
      if ('problem' in target) {
        tracked.problems.push(target.problem);
        continue;
      }
      if (!reaches(notification.severity, target.least)) continue;
      tracked.pending++;
      this.queue(target).enqueue(notification, (outcome) => {
        if (!outcome.delivered) {
          const problem = `${target.label}: ${outcome.problem}`;
          tracked.problems.push(problem);
          this.options.log.warn({ canary: key, destination: target.label, notification: notification.kind, problem }, 'notification not delivered');
        }
        settleOne();
      });
    }
    settleOne();
  }

  private async resolve(targets: readonly NotificationTarget[] | undefined, namespace: string): Promise<(Resolved | { problem: string })[]> {
    const { destinations } = this.options;
    const chosen = targets ?? destinations.filter((d) => d.isDefault).map((d): NotificationTarget => ({ destination: d.name }));
    return Promise.all(
      chosen.map(async (target): Promise<Resolved | { problem: string }> => {
        if (target.secretRef !== undefined) return this.resolveOwn(target, namespace);
        const destination = destinations.find((d) => d.name === target.destination);
        if (destination === undefined) {
          const names = destinations.map((d) => d.name);
          return {
            problem: `spec.notifications: this controller has no destination named ${target.destination ?? '?'} (${names.length === 0 ? 'it has none; an operator adds them with modelcanary run --notify' : `it has: ${names.join(', ')}`})`,
          };
        }
        const url = 'value' in destination.url ? { ok: true as const, url: destination.url.value } : await this.readUrl(destination.url.secret.namespace, destination.url.secret.name, false);
        if (!url.ok) return { problem: `destination ${destination.name}: ${url.problem}` };
        return { label: destination.name, format: destination.format, url: url.url, least: stricter(destination.least, target.severity ?? 'info') };
      }),
    );
  }

  /** A team's own webhook: read only from a Secret that consents, and sent only where the operator allows. */
  private async resolveOwn(target: NotificationTarget, namespace: string): Promise<Resolved | { problem: string }> {
    const secret = target.secretRef?.name ?? '';
    const label = `${namespace}/${secret}`;
    const url = await this.readUrl(namespace, secret, true);
    if (!url.ok) return { problem: `spec.notifications secretRef ${secret}: ${url.problem}` };
    const format = target.format ?? 'slack';
    const allowed = format === 'slack' ? [SLACK_WEBHOOKS, ...this.options.allowedWebhooks] : this.options.allowedWebhooks;
    if (!allowed.some((prefix) => isUnder(url.url, prefix))) {
      const where = allowed.length === 0 ? 'this controller allows none; an operator allows addresses with modelcanary run --allow-webhook' : `it sends only under ${allowed.map(redact).join(', ')}`;
      return { problem: `spec.notifications secretRef ${secret}: the ${format} webhook in it is not at an allowed address (${where})` };
    }
    return { label, format, url: url.url, least: target.severity ?? 'info' };
  }

  private async readUrl(namespace: string, name: string, consentRequired: boolean): Promise<UrlResult> {
    const key = `${namespace}/${name}/${String(consentRequired)}`;
    const cached = this.urls.get(key);
    // A refusal is read again sooner: the fix (a label, a key) should take effect at the next transition.
    if (cached !== undefined && Date.now() - cached.at < (cached.result.ok ? URL_TTL_MS : URL_RETRY_MS)) return cached.result;
    const result = await this.options.readUrl(namespace, name, consentRequired);
    this.urls.set(key, { result, at: Date.now() });
    return result;
  }

  private queue(target: Resolved): DeliveryQueue {
    const key = `${target.format} ${target.url}`;
    let queue = this.queues.get(key);
    if (queue === undefined) {
      const notifier = (this.options.notifierFor ?? defaultNotifier)(target.format, target.url, this.options.links);
      const onOutcome = this.options.onOutcome;
      queue = new DeliveryQueue(notifier, {
        ...this.options.delivery,
        onOutcome: onOutcome === undefined ? undefined : (outcome) => { onOutcome(target.label, outcome); },
      });
      this.queues.set(key, queue);
    }
    return queue;
  }

  private forgetOld(): void {
    const now = Date.now();
    for (const [id, tracked] of this.tracked) if (tracked.settledAt !== undefined && now - tracked.settledAt > FORGET_AFTER_MS) this.tracked.delete(id);
  }
}

function defaultNotifier(format: Format, url: string, links: Links | undefined): Notifier {
  return format === 'slack' ? new SlackNotifier({ url, links }) : new WebhookNotifier({ url, links });
}

/**
 * Parses `NAME=FORMAT,secret=NAMESPACE/NAME[,severity=LEVEL][,default]`, the value of --notify.
 * The URL is read from the Secret's key "url": a webhook URL is a credential.
 */
export function parseDestination(text: string, defaultNamespace: string): Destination | { problem: string } {
  const usage = 'write NAME=slack|webhook,secret=NAMESPACE/NAME[,severity=info|warning|error][,default]';
  const [head = '', ...options] = text.split(',').map((part) => part.trim());
  const match = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)=(slack|webhook)$/.exec(head);
  if (match === null) return { problem: `--notify ${head.includes('://') ? '(a URL)' : JSON.stringify(head)}: ${usage}; the URL goes in the Secret's key "url"` };
  const name = match[1] ?? '';
  const format = match[3] as Format;
  let secret: { namespace: string; name: string } | undefined;
  let least: Severity = 'info';
  let isDefault = false;
  for (const option of options) {
    const secretMatch = /^secret=(?:([a-z0-9-]+)\/)?([a-z0-9.-]+)$/.exec(option);
    const severityMatch = /^severity=(info|warning|error)$/.exec(option);
    if (secretMatch !== null) secret = { namespace: secretMatch[1] ?? defaultNamespace, name: secretMatch[2] ?? '' };
    else if (severityMatch !== null) least = severityMatch[1] as Severity;
    else if (option === 'default') isDefault = true;
    else if (option.includes('://')) return { problem: `--notify ${name}: a webhook URL is a credential and does not go in a flag: put it in key "url" of a Secret and write secret=NAMESPACE/NAME` };
    else return { problem: `--notify ${name}: unknown option ${JSON.stringify(option)}; ${usage}` };
  }
  if (secret === undefined) return { problem: `--notify ${name}: name the Secret that holds the webhook URL (key "url"): ${usage}` };
  return { name, format, url: { secret }, least, isDefault };
}
