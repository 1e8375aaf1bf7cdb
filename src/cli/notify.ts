// `modelcanary notify`: sends one sample notification, built from a ModelCanary manifest, to a
// webhook, so that a person sees in their own channel what a rollout will look like there
// before a real one, and learns at once whether Slack takes the webhook.

import { KIND, type Metric, type ModelCanary } from '../api/modelcanary.ts';
import { NOTIFICATION_KINDS, type NotificationKind, type ModelCanaryStatus, type Phase } from '../api/status.ts';
import { checkKind, checkModelCanary } from '../api/validate.ts';
import { startState, type Action, type Decision } from '../analysis/engine.ts';
import type { MetricVerdict } from '../analysis/verdicts.ts';
import { notificationOf } from '../controller/notifications.ts';
import type { Notification } from '../api/status.ts';
import { redact } from '../metrics/endpoints.ts';
import type { Links } from '../notify/notifier.ts';
import { slackMessage, SlackNotifier } from '../notify/slack.ts';
import { webhookBody, WebhookNotifier } from '../notify/webhook.ts';
import { parseCommand } from './args.ts';
import { isRecord, readYamlFile } from './files.ts';
import { EXIT, type Io } from './io.ts';

const USAGE = `Usage: modelcanary notify --canary FILE (--webhook URL | --dry-run) [--event KIND] [--format slack|webhook] [--dashboard-url TEMPLATE]

Sends one sample notification about the ModelCanary in FILE, with made-up numbers marked
as a sample, the way the controller would send it: to see it in your channel before a real
rollout, and to learn whether the webhook works.

Flags:
  --canary FILE          the ModelCanary manifest
  --webhook URL          a Slack incoming webhook (or, with --format webhook, any receiver)
  --event KIND           ${NOTIFICATION_KINDS.join(', ')}; default rolledBack
  --format F             slack (Block Kit, default) or webhook (the generic JSON body)
  --dashboard-url T      a link to add, {{namespace}}, {{name}} and {{model}} substituted
  --dry-run              print the JSON that would be sent, send nothing

Exit status: 0 the receiver accepted it (or --dry-run), 1 it refused it (Slack's reason is
printed) or the file holds no valid ModelCanary, 2 bad flags, a file that cannot be read, or
a receiver that cannot be reached.
`;

export async function runNotify(args: string[], io: Io, signal?: AbortSignal): Promise<number> {
  const parsed = parseCommand(
    'notify',
    args,
    {
      canary: { type: 'string' },
      webhook: { type: 'string' },
      event: { type: 'string', default: 'rolledBack' },
      format: { type: 'string', default: 'slack' },
      'dashboard-url': { type: 'string' },
      'dry-run': { type: 'boolean' },
    },
    USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const fail = (message: string): number => {
    io.stderr.write(`modelcanary notify: ${message}\n`);
    return EXIT.unreadable;
  };
  if (values.canary === undefined) return fail('--canary FILE is required; see modelcanary notify --help');
  if (values.webhook === undefined && values['dry-run'] !== true) return fail('--webhook URL is required (or --dry-run to print the message)');
  const kind = values.event as NotificationKind;
  if (!(NOTIFICATION_KINDS as readonly string[]).includes(kind)) return fail(`--event must be one of ${NOTIFICATION_KINDS.join(', ')}, not ${values.event}`);
  const format = values.format;
  if (format !== 'slack' && format !== 'webhook') return fail(`--format must be slack or webhook, not ${format}`);
  if (values.webhook !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(values.webhook);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) return fail('--webhook must be an http:// or https:// URL, such as https://hooks.slack.com/services/T000/B000/XXXX');
  }
  const dashboard = values['dashboard-url'];
  if (dashboard !== undefined && !/^https?:\/\//.test(dashboard)) return fail('--dashboard-url must start with http:// or https://');

  const file = await readYamlFile(values.canary, io);
  if (!file.ok) {
    io.stderr.write(`${file.messages.join('\n')}\n`);
    return EXIT.unreadable;
  }
  // The first ModelCanary, or the first document that was meant to be one (a misspelt kind).
  const document = file.values.find((d) => isRecord(d) && typeof d.kind === 'string' && checkKind(d.apiVersion, d.kind).is !== 'other');
  const kindCheck = isRecord(document) && typeof document.kind === 'string' ? checkKind(document.apiVersion, document.kind) : undefined;
  const checked = document === undefined ? undefined : kindCheck?.is === 'mistaken' ? { ok: false as const, problems: [kindCheck.problem] } : checkModelCanary(document);
  if (checked === undefined || !checked.ok) {
    const problems = checked === undefined ? [`no ${KIND} in this file`] : checked.problems.map((p) => `${p.path}: ${p.message}`);
    for (const p of problems) io.stderr.write(`${values.canary}: ${p}\n`);
    return EXIT.invalid;
  }
  const notification = sampleNotification(checked.value, kind, new Date());
  const links: Links = { dashboard };
  if (values['dry-run'] === true || values.webhook === undefined) {
    io.stdout.write(`${JSON.stringify(format === 'slack' ? slackMessage(notification, links) : webhookBody(notification, links), null, 2)}\n`);
    return EXIT.ok;
  }
  const notifier = format === 'slack' ? new SlackNotifier({ url: values.webhook, links }) : new WebhookNotifier({ url: values.webhook, links });
  const sent = await notifier.send(notification, signal ?? AbortSignal.timeout(15_000));
  const where = redact(values.webhook).replace(/(\/services\/[^/]+\/)[^/]+\/[^/]+$/, '$1…');
  if (sent.ok) {
    io.stdout.write(`sent: ${format === 'slack' ? 'Slack' : 'the receiver'} accepted the ${kind} sample for ${checked.value.metadata.name} (${where})\n`);
    return EXIT.ok;
  }
  io.stderr.write(`modelcanary notify: not sent: ${sent.problem}\n`);
  return sent.retry === 'never' ? EXIT.invalid : EXIT.unreadable;
}

/** The notification a transition of `canary` would bring, with made-up numbers, marked as a sample. */
export function sampleNotification(canary: ModelCanary, kind: NotificationKind, now: Date): Notification {
  const { steps } = canary.spec.analysis;
  const lastStep = steps.length - 1;
  const at: Record<NotificationKind, { step: number; weight: number; phase: Phase; action?: Action }> = {
    started: { step: 0, weight: steps[0] ?? 0, phase: 'Progressing' },
    retried: { step: 0, weight: steps[0] ?? 0, phase: 'Progressing' },
    canaryReplaced: { step: 0, weight: steps[0] ?? 0, phase: 'Progressing' },
    advanced: { step: Math.min(1, lastStep), weight: steps[Math.min(1, lastStep)] ?? 0, phase: 'Progressing', action: 'advance' },
    promoted: { step: lastStep, weight: 100, phase: 'Succeeded', action: 'promote' },
    rolledBack: { step: Math.min(1, lastStep), weight: 0, phase: 'RolledBack', action: 'rollback' },
    noEvidence: { step: 0, weight: steps[0] ?? 0, phase: 'Progressing', action: 'hold' },
    held: { step: 0, weight: steps[0] ?? 0, phase: 'Failed' },
    invalid: { step: 0, weight: steps[0] ?? 0, phase: 'Failed' },
    paused: { step: 0, weight: steps[0] ?? 0, phase: 'Paused' },
    resumed: { step: 0, weight: steps[0] ?? 0, phase: 'Progressing' },
    gated: { step: Math.min(1, lastStep), weight: steps[Math.min(1, lastStep)] ?? 0, phase: 'Progressing', action: 'hold' },
    aborted: { step: Math.min(1, lastStep), weight: 0, phase: 'RolledBack', action: 'rollback' },
  };
  const { step, weight, phase, action } = at[kind];
  const status: ModelCanaryStatus = { phase, canaryWeight: weight, currentStep: step, stableVersion: canary.spec.stable.version, canaryVersion: canary.spec.canary.version };
  const failing = kind === 'rolledBack';
  const verdicts = canary.spec.analysis.metrics.map((metric, index) => sampleVerdict(metric, failing && index === 0, kind === 'noEvidence'));
  const first = verdicts[0];
  const reason =
    kind === 'rolledBack' && first !== undefined
      ? `${first.name}: ${first.reason}; rolled back at once`
      : kind === 'noEvidence'
        ? `no check could judge the canary for ${canary.spec.analysis.inconclusiveLimit} checks in a row: too few requests`
        : kind === 'held' || kind === 'invalid'
          ? 'this is where the controller says what holds the rollout and how to fix it'
          : 'every metric within its bound';
  const decision: Decision | undefined = action === undefined ? undefined : { action, weight, state: startState(), verdicts, reason, inconclusiveAlarm: kind === 'noEvidence', warnings: [] };
  const real = notificationOf(canary, { kind, status, decision, reason, now });
  return { ...real, id: `sample/${real.id}`, summary: `[sample] ${real.summary}`.slice(0, 1024) };
}

function sampleVerdict(metric: Metric, fails: boolean, inconclusive: boolean): MetricVerdict {
  const verdict = inconclusive ? 'inconclusive' : fails ? 'fail' : 'pass';
  const base = { name: metric.name, type: metric.type, verdict, severe: false } as const;
  switch (metric.type) {
    case 'errorRate':
    case 'inferenceErrorRate': {
      const stable = Math.min(metric.max / 5, 0.002);
      const canary = fails ? Math.min(1, Math.max(metric.max * 4, 0.05)) : stable;
      return { ...base, stable, canary, reason: fails ? `canary ${(canary * 100).toFixed(1)} % of requests failed, above the bound ${(metric.max * 100).toFixed(2)} % (sample numbers)` : 'within the bound (sample numbers)' };
    }
    case 'latency':
    case 'ttft':
    case 'interTokenLatency':
    case 'e2eLatency': {
      const stable = 180;
      const bound = Math.min(metric.maxMs ?? Infinity, stable * (metric.maxRatioToStable ?? Infinity));
      const canary = fails ? Math.round(bound * 1.6) : Math.round(stable * 1.05);
      return { ...base, stable, canary, reason: fails ? `canary ${canary} ms, above the bound ${Math.round(bound)} ms (sample numbers)` : 'within the bound (sample numbers)' };
    }
    case 'outliers': {
      const canary = fails ? 4 : 0;
      return { ...base, stable: 0, canary, reason: fails ? `canary endpoints ejected ${canary} times in the window, stable's 0: above maxEjections ${metric.maxEjections ?? 0} (sample numbers)` : 'no ejections (sample numbers)' };
    }
    case 'prometheus': {
      const stable = metric.max ?? metric.min ?? 1;
      const canary = fails ? (metric.max === undefined ? stable / 2 : metric.max * 1.5) : stable;
      return { ...base, stable, canary, reason: fails ? 'outside its bound (sample numbers)' : 'within the bound (sample numbers)' };
    }
  }
}
