// `modelcanary run`: the composition root of the controller. Flags (and their environment
// equivalents) are read here and nowhere below.

import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import type { ModelCanary } from '../api/modelcanary.ts';
import { Controller } from '../controller/controller.ts';
import { KubeObjectStore } from '../controller/kube-store.ts';
import { KubeCanaryClient, KubeEventRecorder } from '../controller/kube-canaries.ts';
import { DEFAULT_TIMING, LeaderElector } from '../controller/leader.ts';
import { PrometheusClient, type Credentials } from '../metrics/prometheus-client.ts';
import { readCredentials } from '../controller/credentials.ts';
import { PrometheusMetricsProvider } from '../metrics/prometheus-provider.ts';
import type { MetricsProvider } from '../metrics/provider.ts';
import { createLogger, isLogLevel, type Logger } from '../observability/logger.ts';
import { ControllerMetrics } from '../observability/metrics.ts';
import { startHealthServer } from '../observability/server.ts';
import { parseCommand } from './args.ts';
import { parseDuration } from '../api/duration.ts';
import { EXIT, type Io } from './io.ts';
import { packageVersion } from './version.ts';

const USAGE = `Usage: modelcanary run [flags]

Runs the controller: watches ModelCanaries and rolls them out.

Flags (environment variable in brackets):
  --kubeconfig FILE     kubeconfig to use; default: in-cluster, then ~/.kube/config [KUBECONFIG]
  --namespace NS        watch only this namespace; repeatable; default: all [MODELCANARY_NAMESPACES, comma-separated]
  --selector LABELS     only ModelCanaries with these labels, to shard [MODELCANARY_SELECTOR]
  --metrics-addr ADDR   where /metrics, /healthz and /readyz listen; default :8080 [MODELCANARY_METRICS_ADDR]
  --prometheus URL      Prometheus for ModelCanaries without metricsProvider [MODELCANARY_PROMETHEUS]
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
      'log-level': { type: 'string' },
      'leader-elect': { type: 'boolean' },
      resync: { type: 'string' },
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
    return EXIT.invalid;
  }
  const leaderElect = values['leader-elect'] === true || env.MODELCANARY_LEADER_ELECT === 'true';
  const resyncText = values.resync ?? env.MODELCANARY_RESYNC ?? '5m';
  const resyncMs = parseDuration(resyncText);
  if (resyncMs === undefined || resyncMs < 10_000) {
    io.stderr.write(`modelcanary run: --resync must be a duration of at least 10s, such as 5m, not ${resyncText}\n`);
    return EXIT.invalid;
  }

  const kubeConfig = new KubeConfig();
  const kubeconfigFile = values.kubeconfig ?? env.KUBECONFIG;
  try {
    if (kubeconfigFile === undefined) kubeConfig.loadFromDefault();
    else kubeConfig.loadFromFile(kubeconfigFile);
  } catch (error) {
    io.stderr.write(`modelcanary run: cannot load the kubeconfig${kubeconfigFile === undefined ? '' : ` ${kubeconfigFile}`}: ${(error as Error).message}\n`);
    return EXIT.unreadable;
  }

  let running: RunningController;
  try {
    running = await startController({
      kubeConfig,
      namespaces,
      selector: values.selector ?? env.MODELCANARY_SELECTOR,
      metricsAddr: values['metrics-addr'] ?? env.MODELCANARY_METRICS_ADDR ?? ':8080',
      defaultPrometheus: values.prometheus ?? env.MODELCANARY_PROMETHEUS ?? 'http://prometheus.istio-system:9090',
      log: createLogger({ level, destination: io.stderr as NodeJS.WritableStream & { isTTY?: boolean } }),
      resyncMs,
      leaderElection: leaderElect
        ? { namespace: env.POD_NAMESPACE ?? 'default', identity: env.POD_NAME ?? `${hostname()}-${process.pid}` }
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
  /** Prometheus for ModelCanaries without spec.metricsProvider. */
  defaultPrometheus: string;
  /** Answers for every ModelCanary instead of Prometheus (the demo without Prometheus). */
  metricsProvider?: MetricsProvider | undefined;
  log: Logger;
  /** Run as one of several replicas, writing only while holding the Lease modelcanary-leader. */
  leaderElection?: { namespace: string; identity: string } | undefined;
  /** How often every ModelCanary is listed and reconciled again; default 5 min. */
  resyncMs?: number | undefined;
}

export interface RunningController {
  /** host:port where /metrics listens. */
  metricsAddress: string;
  /** Resolves if another replica took the lease: the process must stop. */
  lost: Promise<void>;
  /** Graceful shutdown: stop taking work, let the reconcile in flight finish, release the lease. */
  stop(): Promise<void>;
}

/** The controller, composed: informer, reconciler, routers, Prometheus providers, metrics server, leader election. */
export async function startController(settings: ControllerSettings): Promise<RunningController> {
  const { kubeConfig, log } = settings;
  const metrics = new ControllerMetrics(packageVersion());
  const providerFor = settings.metricsProvider === undefined ? prometheusProviders(kubeConfig, settings.defaultPrometheus, metrics) : constant(settings.metricsProvider);
  const store = new KubeObjectStore(kubeConfig);
  const controller = new Controller(
    {
      canaries: new KubeCanaryClient(kubeConfig),
      routes: store,
      providerFor,
      events: new KubeEventRecorder(kubeConfig),
      log,
      now: () => new Date(),
      observer: {
        checked: (canary, decision, status) => {
          const outcome = decision.action === 'promote' ? 'promoted' : decision.action === 'rollback' ? 'rolledBack' : undefined;
          const started = status.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'RolloutStarted')?.lastTransitionTime;
          metrics.recordCheck({
            namespace: canary.metadata.namespace ?? 'default',
            name: canary.metadata.name,
            phase: status.phase ?? 'Progressing',
            weight: status.canaryWeight ?? 0,
            metrics: decision.verdicts.map((v) => ({ metric: v.name, verdict: v.verdict, stable: v.stable, canary: v.canary })),
            outcome,
            durationSeconds: outcome === undefined || started === undefined ? undefined : (Date.now() - Date.parse(started)) / 1000,
          });
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
        log.warn({ canary: key, error: error instanceof Error ? error.message : String(error) }, 'reconcile failed; retrying');
      },
      onReconciled: (_key, seconds) => {
        metrics.reconciled(seconds);
      },
      resyncMs: settings.resyncMs,
      log,
    },
  );

  const leader = settings.leaderElection;
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
      prometheus: settings.metricsProvider === undefined ? settings.defaultPrometheus : 'none: counters read directly',
      leaderElection: elector !== undefined,
    },
    'controller started',
  );

  const lost = new Promise<void>((resolve) => {
    elector?.run({
      started: async () => {
        log.info({}, 'leading: reconciling');
        await controller.start();
      },
      lost: () => {
        // Another replica may already be writing: stop at once, as client-go controllers exit.
        log.error({}, 'lost the lease: stopping');
        resolve();
      },
    });
  });
  let stopping: Promise<void> | undefined;
  return {
    metricsAddress: server.address,
    lost,
    stop: () =>
      (stopping ??= (async () => {
        log.info({}, 'stopping');
        await controller.stop();
        await elector?.release();
        await server.close();
      })()),
  };
}

function constant(provider: MetricsProvider): (canary: ModelCanary) => Promise<MetricsProvider> {
  return () => Promise.resolve(provider);
}

/** One Prometheus provider per address, headers and credentials, made when first needed. */
function prometheusProviders(kubeConfig: KubeConfig, defaultPrometheus: string, metrics: ControllerMetrics): (canary: ModelCanary) => Promise<MetricsProvider | { problem: string }> {
  const providers = new Map<string, { provider: MetricsProvider; made: number }>();
  // Secrets are read again after a while, so rotated credentials are picked up.
  const SECRET_TTL_MS = 5 * 60_000;
  return async (canary) => {
    const settings = canary.spec.metricsProvider?.prometheus;
    const address = settings?.address ?? defaultPrometheus;
    const namespace = canary.metadata.namespace ?? 'default';
    const secret = settings?.secretRef?.name;
    const key = JSON.stringify([address, settings?.headers ?? {}, settings?.timeout ?? 10_000, secret === undefined ? '' : `${namespace}/${secret}`]);
    const cached = providers.get(key);
    if (cached !== undefined && (secret === undefined || Date.now() - cached.made < SECRET_TTL_MS)) return cached.provider;
    let credentials: Credentials | undefined;
    if (secret !== undefined) {
      const read = await readCredentials(kubeConfig, namespace, secret);
      if (!read.ok) return { problem: read.problem };
      credentials = read.credentials;
    }
    const provider = new PrometheusMetricsProvider(
      new PrometheusClient({ address, headers: settings?.headers, timeoutMs: settings?.timeout, credentials, onQuery: (seconds, outcome) => { metrics.queried(seconds, outcome); } }),
    );
    providers.set(key, { provider, made: Date.now() });
    return provider;
  };
}
