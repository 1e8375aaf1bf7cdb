// `modelcanary run`: the composition root of the controller. Flags (and their environment
// equivalents) are read here and nowhere below.

import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { ModelCanary } from '../api/modelcanary.ts';
import { Controller } from '../controller/controller.ts';
import { KubeObjectStore, SharedListStore } from '../controller/kube-store.ts';
import { KubeCanaryClient, KubeEventRecorder } from '../controller/kube-canaries.ts';
import { InformedCanaries } from '../controller/informed-canaries.ts';
import { DEFAULT_TIMING, LeaderElector } from '../controller/leader.ts';
import { apiErrorMessage } from '../controller/kube-errors.ts';
import { PrometheusClient, type Credentials } from '../metrics/prometheus-client.ts';
import { readCredentials, readWebhookUrl } from '../controller/credentials.ts';
import { Outbox, parseDestination, type Destination } from '../controller/outbox.ts';
import { HttpWebhookCaller } from '../controller/webhooks.ts';
import { RolloutSlots } from '../controller/slots.ts';
import { shareConnections } from '../controller/kube-connections.ts';
import { CoalescingProvider } from '../metrics/coalesce.ts';
import { effectiveBounds } from '../controller/notifications.ts';
import type { DeliveryOptions } from '../notify/delivery.ts';
import type { Links } from '../notify/notifier.ts';
import { PrometheusMetricsProvider } from '../metrics/prometheus-provider.ts';
import { checkAddress, parseNamedEndpoint, redact, resolveEndpoint, type EndpointPolicy, type NamedEndpoint } from '../metrics/endpoints.ts';
import type { MetricsProvider } from '../metrics/provider.ts';
import { createLogger, isLogLevel, type Logger } from '../observability/logger.ts';
import { ControllerMetrics } from '../observability/metrics.ts';
import { startHealthServer } from '../observability/server.ts';
import { parseCommand } from './args.ts';
import { parseDuration } from '../api/duration.ts';
import { EXIT, type Io } from './io.ts';
import { kubeconfigFor, loadKube } from './kube.ts';
import { packageVersion } from './version.ts';

const USAGE = `Usage: modelcanary run [flags]

Runs the controller: watches ModelCanaries and rolls them out.

Flags (environment variable in brackets):
  --kubeconfig FILE     kubeconfig to use; default: in-cluster, then ~/.kube/config [KUBECONFIG]
  --namespace NS        watch only this namespace; repeatable; default: all [MODELCANARY_NAMESPACES, comma-separated]
  --selector LABELS     only ModelCanaries with these labels, to shard [MODELCANARY_SELECTOR]
  --metrics-addr ADDR   where /metrics, /healthz and /readyz listen; default :8080 [MODELCANARY_METRICS_ADDR]
  --prometheus URL      Prometheus for ModelCanaries without metricsProvider; always allowed
                        [MODELCANARY_PROMETHEUS]
  --metrics-provider NAME=URL[,secret=NAMESPACE/NAME]
                        a provider ModelCanaries may name (spec.metricsProvider.name), with the
                        Secret that holds its credentials; repeatable
                        [MODELCANARY_METRICS_PROVIDERS, separated by ;]
  --allow-prometheus URL
                        let spec.metricsProvider.prometheus.address point under this base URL;
                        repeatable; default: only --prometheus [MODELCANARY_ALLOW_PROMETHEUS, comma-separated]
  --notify NAME=slack|webhook,secret=NAMESPACE/NAME[,severity=LEVEL][,default]
                        a destination ModelCanaries may name (spec.notifications[].destination);
                        the Secret's key "url" holds the webhook URL; severity: the least sent
                        there (info, warning, error); default: used by ModelCanaries without
                        spec.notifications; repeatable [MODELCANARY_NOTIFY, separated by ;]
  --allow-webhook URL   let a team's own generic webhook (spec.notifications[].secretRef), and
                        spec.analysis.webhooks and webhook gates, point under this base URL;
                        Slack's hooks.slack.com is always allowed for Slack; repeatable
                        [MODELCANARY_ALLOW_WEBHOOK, comma-separated]
  --max-concurrent-rollouts N
                        start at most N rollouts at once; the rest wait in phase Waiting and
                        start, longest-waiting first, as others end; default: no cap
                        [MODELCANARY_MAX_CONCURRENT_ROLLOUTS]
  --workers N           passes run at once (checks, watches, starts); the rest wait their turn, a
                        person's edit first; default 32 [MODELCANARY_WORKERS]
  --metrics-grid DURATION
                        read metrics at instants on this grid, shared by every rollout, so that
                        rollouts due in one grid cell share their queries; never coarser than a
                        rollout's own watch interval; 1s to 1m, default 10s [MODELCANARY_METRICS_GRID]
  --dashboard-url TEMPLATE
                        a link in every message, {{namespace}}, {{name}} and {{model}}
                        substituted [MODELCANARY_DASHBOARD_URL]
  --log-level LEVEL     trace, debug, info, warn, error; default info [MODELCANARY_LOG_LEVEL]
  --resync DURATION     list and reconcile every ModelCanary again this often, so that a lost
                        watch event heals; default 5m [MODELCANARY_RESYNC]
  --leader-elect        run as one of several replicas: only the holder of the Lease
                        modelcanary-leader in $POD_NAMESPACE writes (15 s / 10 s / 2 s) [MODELCANARY_LEADER_ELECT=true]
`;

export async function runController(args: string[], io: Io, signal?: AbortSignal, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseCommand(
    'run',
    args,
    {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string', multiple: true },
      selector: { type: 'string' },
      'metrics-addr': { type: 'string' },
      prometheus: { type: 'string' },
      'metrics-provider': { type: 'string', multiple: true },
      'allow-prometheus': { type: 'string', multiple: true },
      notify: { type: 'string', multiple: true },
      'allow-webhook': { type: 'string', multiple: true },
      'dashboard-url': { type: 'string' },
      'log-level': { type: 'string' },
      'leader-elect': { type: 'boolean' },
      resync: { type: 'string' },
      'max-concurrent-rollouts': { type: 'string' },
      workers: { type: 'string' },
      'metrics-grid': { type: 'string' },
    },
    USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const namespaces = values.namespace ?? (env.MODELCANARY_NAMESPACES ?? '').split(',').map((n) => n.trim()).filter((n) => n !== '');
  const level = values['log-level'] ?? env.MODELCANARY_LOG_LEVEL ?? 'info';
  if (!isLogLevel(level)) {
    io.stderr.write(`modelcanary run: --log-level must be one of trace, debug, info, warn, error, fatal, silent, not ${level}\n`);
    return EXIT.unreadable;
  }
  const leaderElect = values['leader-elect'] === true || env.MODELCANARY_LEADER_ELECT === 'true';
  const defaultPrometheus = values.prometheus ?? env.MODELCANARY_PROMETHEUS ?? 'http://prometheus.istio-system:9090';
  const podNamespace = env.POD_NAMESPACE ?? 'default';
  const namedProviders: NamedEndpoint[] = [];
  const problems: string[] = [];
  const defaultProblem = checkAddress(defaultPrometheus, '--prometheus');
  if (defaultProblem !== undefined) problems.push(defaultProblem);
  for (const text of values['metrics-provider'] ?? splitList(env.MODELCANARY_METRICS_PROVIDERS, ';')) {
    const parsed = parseNamedEndpoint(text, podNamespace);
    if ('problem' in parsed) problems.push(parsed.problem);
    else namedProviders.push(parsed);
  }
  const allowedPrometheus = values['allow-prometheus'] ?? splitList(env.MODELCANARY_ALLOW_PROMETHEUS, ',');
  for (const prefix of allowedPrometheus) {
    const problem = checkAddress(prefix, '--allow-prometheus');
    if (problem !== undefined) problems.push(problem);
  }
  const destinations: Destination[] = [];
  for (const text of values.notify ?? splitList(env.MODELCANARY_NOTIFY, ';')) {
    const parsed = parseDestination(text, podNamespace);
    if ('problem' in parsed) problems.push(parsed.problem);
    else if (destinations.some((d) => d.name === parsed.name)) problems.push(`--notify ${parsed.name}: defined twice`);
    else destinations.push(parsed);
  }
  const allowedWebhooks = values['allow-webhook'] ?? splitList(env.MODELCANARY_ALLOW_WEBHOOK, ',');
  for (const prefix of allowedWebhooks) {
    const problem = checkAddress(prefix, '--allow-webhook');
    if (problem !== undefined) problems.push(problem);
  }
  const dashboard = values['dashboard-url'] ?? env.MODELCANARY_DASHBOARD_URL;
  if (dashboard !== undefined && !/^https?:\/\//.test(dashboard)) problems.push(`--dashboard-url must start with http:// or https://, such as https://grafana.example.com/d/modelcanary-rollout?var-namespace={{namespace}}&var-modelcanary={{name}}`);
  if (problems.length > 0) {
    for (const problem of problems) io.stderr.write(`modelcanary run: ${problem}\n`);
    return EXIT.unreadable;
  }
  const capText = values['max-concurrent-rollouts'] ?? env.MODELCANARY_MAX_CONCURRENT_ROLLOUTS;
  const maxConcurrentRollouts = capText === undefined ? undefined : Number(capText);
  if (maxConcurrentRollouts !== undefined && (!Number.isInteger(maxConcurrentRollouts) || maxConcurrentRollouts < 1)) {
    io.stderr.write(`modelcanary run: --max-concurrent-rollouts must be a whole number of at least 1, not ${capText}\n`);
    return EXIT.unreadable;
  }
  const workersText = values.workers ?? env.MODELCANARY_WORKERS ?? '32';
  const workers = Number(workersText);
  if (!Number.isInteger(workers) || workers < 1 || workers > 1000) {
    io.stderr.write(`modelcanary run: --workers must be a whole number from 1 to 1000, not ${workersText}\n`);
    return EXIT.unreadable;
  }
  const gridText = values['metrics-grid'] ?? env.MODELCANARY_METRICS_GRID ?? '10s';
  const readGridMs = parseDuration(gridText);
  if (readGridMs === undefined || readGridMs < 1000 || readGridMs > 60_000 || readGridMs % 1000 !== 0) {
    io.stderr.write(`modelcanary run: --metrics-grid must be whole seconds from 1s to 1m, such as 10s, not ${gridText}\n`);
    return EXIT.unreadable;
  }
  const resyncText = values.resync ?? env.MODELCANARY_RESYNC ?? '5m';
  const resyncMs = parseDuration(resyncText);
  if (resyncMs === undefined || resyncMs < 10_000) {
    io.stderr.write(`modelcanary run: --resync must be a duration of at least 10s, such as 5m, not ${resyncText}\n`);
    return EXIT.unreadable;
  }

  const checked = kubeconfigFor('run', values.kubeconfig, io, env);
  if (typeof checked === 'number') return checked;
  const target = loadKube({ kubeconfig: values.kubeconfig === undefined ? undefined : resolve(io.cwd, values.kubeconfig) }, checked);
  if ('problem' in target) {
    io.stderr.write(`modelcanary run: ${target.problem}\n`);
    return EXIT.unreadable;
  }
  const { kubeConfig } = target;

  let running: RunningController;
  try {
    running = await startController({
      kubeConfig,
      namespaces,
      selector: values.selector ?? env.MODELCANARY_SELECTOR,
      metricsAddr: values['metrics-addr'] ?? env.MODELCANARY_METRICS_ADDR ?? ':8080',
      defaultPrometheus,
      namedProviders,
      allowedPrometheus,
      notifications: { destinations, allowedWebhooks, links: { dashboard } },
      log: createLogger({ level, destination: io.stderr as NodeJS.WritableStream & { isTTY?: boolean } }),
      resyncMs,
      maxConcurrentRollouts,
      workers,
      readGridMs,
      leaderElection: leaderElect
        ? { namespace: podNamespace, identity: env.POD_NAME ?? `${hostname()}-${process.pid}` }
        : undefined,
    });
  } catch (error) {
    io.stderr.write(`modelcanary run: ${(error as Error).message}\n`);
    return EXIT.unreadable;
  }

  const stopped = await new Promise<'signal' | 'lost'>((resolve) => {
    void running.lost.then(() => {
      resolve('lost');
    });
    const stop = (): void => {
      resolve('signal');
    };
    if (signal !== undefined) signal.addEventListener('abort', stop, { once: true });
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await running.stop();
  return stopped === 'lost' ? EXIT.invalid : EXIT.ok;
}

export interface ControllerSettings {
  kubeConfig: KubeConfig;
  /** Namespaces to watch; empty: all. */
  namespaces: string[];
  selector?: string | undefined;
  /** host:port (or :port) of /metrics, /healthz and /readyz; port 0 picks a free one. */
  metricsAddr: string;
  /** Prometheus for ModelCanaries without spec.metricsProvider; always allowed. */
  defaultPrometheus: string;
  /** Providers a ModelCanary may name (spec.metricsProvider.name), with the operator's credentials. */
  namedProviders?: NamedEndpoint[] | undefined;
  /** Base URLs under which spec.metricsProvider.prometheus.address may point. */
  allowedPrometheus?: string[] | undefined;
  /** Where rollouts are announced; without it, only ModelCanaries that bring their own webhook are. */
  notifications?: NotificationSettings | undefined;
  /** Answers for every ModelCanary instead of Prometheus (the demo without Prometheus). */
  metricsProvider?: MetricsProvider | undefined;
  log: Logger;
  /** Run as one of several replicas, writing only while holding the Lease modelcanary-leader. */
  leaderElection?: { namespace: string; identity: string } | undefined;
  /** How often every ModelCanary is listed and reconciled again; default 5 min. */
  resyncMs?: number | undefined;
  /** The most rollouts in progress at once; default: no cap. */
  maxConcurrentRollouts?: number | undefined;
  /** The most passes running at once; default 32. */
  workers?: number | undefined;
  /** The grid of instants metrics are read at (ReconcileDeps.readGridMs); default 10 s. */
  readGridMs?: number | undefined;
}

export interface NotificationSettings {
  destinations: Destination[];
  allowedWebhooks?: string[] | undefined;
  links?: Links | undefined;
  delivery?: Partial<DeliveryOptions> | undefined;
}

export interface RunningController {
  /** host:port where /metrics listens. */
  metricsAddress: string;
  /** Waits (at most `deadlineMs`) until every notification handed over has been delivered or given up on. */
  notificationsSettled(deadlineMs: number): Promise<boolean>;
  /** Resolves if another replica took the lease: the process must stop. */
  lost: Promise<void>;
  /** Graceful shutdown: stop taking work, let the reconcile in flight finish, release the lease. */
  stop(): Promise<void>;
}

/** The controller, composed: informer, reconciler, routers, Prometheus providers, metrics server, leader election. */
export async function startController(settings: ControllerSettings): Promise<RunningController> {
  const { log } = settings;
  const kubeConfig = shareConnections(settings.kubeConfig);
  const metrics = new ControllerMetrics(packageVersion());
  const policy: EndpointPolicy = { defaultAddress: settings.defaultPrometheus, named: settings.namedProviders ?? [], allowedPrefixes: settings.allowedPrometheus ?? [] };
  const providerFor = settings.metricsProvider === undefined ? prometheusProviders(kubeConfig, policy, metrics) : constant(settings.metricsProvider);
  // Lists (the DestinationRules of the subsets preflight) are shared between passes for 5 s.
  const store = new SharedListStore(new KubeObjectStore(kubeConfig));
  let settledKey: (key: string) => void = () => undefined;
  const outbox = new Outbox({
    destinations: settings.notifications?.destinations ?? [],
    allowedWebhooks: settings.notifications?.allowedWebhooks ?? [],
    links: settings.notifications?.links,
    delivery: settings.notifications?.delivery,
    readUrl: (namespace, name, consentRequired) => readWebhookUrl(kubeConfig, namespace, name, consentRequired),
    onSettled: (key) => {
      settledKey(key);
    },
    onOutcome: (destination, outcome) => {
      metrics.notified(destination, outcome);
    },
    log,
  });
  // Passes start from the informer's copy when it is known to be the newest (src/controller/informed-canaries.ts).
  const canaries = new InformedCanaries(new KubeCanaryClient(kubeConfig));
  const controller: Controller = new Controller(
    {
      canaries,
      routes: store,
      providerFor,
      events: new KubeEventRecorder(kubeConfig),
      log,
      now: () => new Date(),
      readGridMs: settings.readGridMs ?? 10_000,
      outbox,
      webhooks: new HttpWebhookCaller(settings.notifications?.allowedWebhooks ?? []),
      slots: settings.maxConcurrentRollouts === undefined ? undefined : new RolloutSlots(settings.maxConcurrentRollouts, () => controller.census()),
      observer: {
        checked: (canary, decision, status, previous) => {
          const outcome = decision.action === 'promote' ? 'promoted' : decision.action === 'rollback' ? 'rolledBack' : undefined;
          // The check that ends a rollout replaces this condition: its start is read from the status before.
          const started = previous.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'RolloutStarted')?.lastTransitionTime;
          metrics.recordCheck({
            namespace: canary.metadata.namespace ?? 'default',
            name: canary.metadata.name,
            phase: status.phase ?? 'Progressing',
            weight: status.canaryWeight ?? 0,
            decision: decision.action,
            metrics: decision.verdicts.map((v) => {
              const metric = canary.spec.analysis.metrics.find((m) => m.name === v.name);
              return { metric: v.name, verdict: v.verdict, stable: v.stable, canary: v.canary, bounds: metric === undefined ? undefined : effectiveBounds(metric, v.stable) };
            }),
            outcome,
            durationSeconds: outcome === undefined || started === undefined ? undefined : (Date.now() - Date.parse(started)) / 1000,
          });
        },
        written: (namespace, name, canary, status) => {
          metrics.recordRollout({
            namespace,
            name,
            model: canary?.spec.model,
            stable: canary?.spec.stable.version,
            canary: canary?.spec.canary.version,
            steps: canary?.spec.analysis.steps,
            metrics: canary?.spec.analysis.metrics.map((m) => m.name),
            inconclusiveLimit: canary?.spec.analysis.inconclusiveLimit,
            phase: status.phase ?? 'Pending',
            weight: status.canaryWeight ?? 0,
            stepIndex: status.currentStep,
            inconclusiveChecks: status.inconclusiveChecks ?? 0,
          });
        },
        transitioned: (namespace, name, event) => {
          metrics.transitioned(namespace, name, event);
        },
        forgotten: (namespace, name) => {
          metrics.forget(namespace, name);
        },
      },
    },
    {
      kubeConfig,
      namespaces: settings.namespaces,
      selector: settings.selector,
      onError: (key, error) => {
        const [namespace = '', name = ''] = key.split('/');
        metrics.reconcileFailed(namespace, name);
        log.warn({ canary: key, error: apiErrorMessage(error) }, 'reconcile failed; retrying');
      },
      onReconciled: (_key, seconds) => {
        metrics.reconciled(seconds);
      },
      resyncMs: settings.resyncMs,
      workers: settings.workers,
      cache: canaries,
      log,
    },
  );

  settledKey = (key) => {
    controller.enqueue(key, 0);
  };

  const leader = settings.leaderElection;
  metrics.leading(leader === undefined);
  metrics.destinations((settings.notifications?.destinations ?? []).map((d) => d.name));
  const elector = leader === undefined ? undefined : new LeaderElector(kubeConfig, { namespace: leader.namespace, name: 'modelcanary-leader', identity: leader.identity, ...DEFAULT_TIMING });
  let server;
  try {
    // A standby replica is ready: it is there to take over.
    server = await startHealthServer(settings.metricsAddr, metrics.registry, () => (elector === undefined || elector.isLeader ? controller.ready : true));
    if (elector === undefined) await controller.start();
  } catch (error) {
    await server?.close();
    throw error;
  }
  log.info(
    {
      namespaces: settings.namespaces.length === 0 ? 'all' : settings.namespaces.join(','),
      metrics: server.address,
      prometheus: settings.metricsProvider === undefined ? redact(settings.defaultPrometheus) : 'none: counters read directly',
      providers: policy.named.map((n) => `${n.name}=${redact(n.address)}`).join(', '),
      allowedPrometheus: policy.allowedPrefixes.map(redact).join(', '),
      notify: (settings.notifications?.destinations ?? []).map((d) => `${d.name} (${d.format}, ${d.least}${d.isDefault ? ', default' : ''})`).join(', '),
      leaderElection: elector !== undefined,
    },
    'controller started',
  );

  let lastLeaseComplaint = 0;
  const lost = new Promise<void>((resolve) => {
    elector?.run({
      started: async () => {
        log.info({}, 'leading: reconciling');
        metrics.leading(true);
        await controller.start();
      },
      lost: () => {
        // Another replica may already be writing: stop at once, as client-go controllers exit.
        log.error({}, 'lost the lease: stopping');
        metrics.leading(false);
        // What it has not sent stays owed in the statuses: the new leader sends it, once.
        outbox.stop();
        resolve();
      },
      failed: (error) => {
        // Once a minute at most: a replica that cannot reach its Lease says why (often RBAC).
        const now = Date.now();
        if (now - lastLeaseComplaint < 60_000) return;
        lastLeaseComplaint = now;
        log.warn({ lease: `${leader?.namespace ?? ''}/modelcanary-leader`, error: apiErrorMessage(error) }, 'cannot read or write the leader Lease; retrying');
      },
    });
  });
  let stopping: Promise<void> | undefined;
  return {
    metricsAddress: server.address,
    notificationsSettled: (deadlineMs) => outbox.idle(deadlineMs),
    lost,
    stop: () =>
      (stopping ??= (async () => {
        log.info({}, 'stopping');
        await controller.stop();
        outbox.stop();
        await elector?.release();
        await server.close();
      })()),
  };
}

function constant(provider: MetricsProvider): (canary: ModelCanary) => Promise<MetricsProvider> {
  return () => Promise.resolve(provider);
}

/**
 * One Prometheus provider per endpoint, headers and credentials, made when first needed. The
 * endpoint is resolved against the operator's policy first: an address the operator did not
 * allow gets no request, and no Secret is read for it.
 */
function prometheusProviders(kubeConfig: KubeConfig, policy: EndpointPolicy, metrics: ControllerMetrics): (canary: ModelCanary) => Promise<MetricsProvider | { problem: string }> {
  const providers = new Map<string, { provider: MetricsProvider; made: number }>();
  // Secrets are read again after a while, so rotated credentials (and withdrawn consent) are picked up.
  const SECRET_TTL_MS = 5 * 60_000;
  return async (canary) => {
    const resolved = resolveEndpoint(policy, canary.spec.metricsProvider, canary.metadata.namespace ?? 'default');
    if (!resolved.ok) return { problem: resolved.problem };
    const { address, headers, timeoutMs, secret } = resolved.endpoint;
    const key = JSON.stringify([address, headers, timeoutMs ?? 10_000, secret === undefined ? '' : `${secret.namespace}/${secret.name}/${String(secret.consentRequired)}`]);
    const cached = providers.get(key);
    if (cached !== undefined && (secret === undefined || Date.now() - cached.made < SECRET_TTL_MS)) return cached.provider;
    let credentials: Credentials | undefined;
    if (secret !== undefined) {
      const read = await readCredentials(kubeConfig, secret.namespace, secret.name, secret.consentRequired);
      if (!read.ok) return { problem: read.problem };
      credentials = read.credentials;
    }
    // Passes that read the same instant share one query, and a check's window is the difference of
    // the totals the watches read (src/metrics/coalesce.ts).
    const provider = new CoalescingProvider(
      new PrometheusMetricsProvider(new PrometheusClient({ address, headers, timeoutMs, credentials, onQuery: (seconds, outcome) => { metrics.queried(seconds, outcome); } })),
      { deriveCounts: true },
    );
    providers.set(key, { provider, made: Date.now() });
    return provider;
  };
}

function splitList(text: string | undefined, separator: string): string[] {
  return (text ?? '').split(separator).map((part) => part.trim()).filter((part) => part !== '');
}
