// The outputs of docs/troubleshooting.md, reproduced on this machine without a cluster: each
// section's scenario is a copy of examples/fraud-detector-istio.yaml broken one way, applied in
// a scene of its own (scene.ts: the sandbox API server, the simulated mesh and load, the real
// Prometheus, the controller), and what the page shows is printed under the page's headings,
// as the commands a person would type and their answers.
//
//   npm run docs:troubleshooting [-- [--only SLUG]... [--parallel N]]
//
// --only runs the named scenarios (the slugs printed beside each); --parallel, how many scenes
// run at once (default 3: most of a scene's time is waiting for an interval to pass). Needs the
// prometheus binary (apt-get install -y prometheus), kubectl and curl on PATH. Times, ports and
// temporary paths differ from run to run.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { pause } from '../src/cli/pause.ts';
import { prometheusMissing } from '../src/sandbox/prometheus.ts';
import { falseCondition, MODEL, NAMESPACE, openScene, type Scene, type SceneOptions } from './troubleshooting/scene.ts';

const EXAMPLE = new URL('../examples/fraud-detector-istio.yaml', import.meta.url);
/** The interval the page's opening names; a section that needs fewer checks lowers inconclusiveLimit instead. */
const INTERVAL = '10s';
const INTERVAL_MS = 10_000;
/** Preflight holds are retried every interval (at least 5 s): one retry and a margin. */
const PREFLIGHT_MS = 30_000;
const FILE = `${MODEL}.yaml`;

// The example's documents, as far as the broken copies edit them; every other field is kept.
const Destination = z.looseObject({ host: z.string(), subset: z.string().optional(), port: z.unknown().optional() });
const Version = z.looseObject({ version: z.string(), destination: Destination });
const CanaryManifest = z.looseObject({
  kind: z.literal('ModelCanary'),
  spec: z.looseObject({
    stable: Version,
    canary: Version,
    analysis: z.looseObject({ interval: z.string(), inconclusiveLimit: z.number().optional(), webhooks: z.array(z.unknown()).optional() }),
    metricsProvider: z.looseObject({ prometheus: z.looseObject({ address: z.string() }) }),
    notifications: z.array(z.unknown()).optional(),
  }),
});
const VirtualServiceManifest = z.looseObject({
  kind: z.literal('VirtualService'),
  spec: z.looseObject({ http: z.array(z.looseObject({ route: z.array(z.looseObject({ destination: Destination, weight: z.number().optional() })) })) }),
});
const DestinationRuleManifest = z.looseObject({
  kind: z.literal('DestinationRule'),
  spec: z.looseObject({ subsets: z.array(z.looseObject({ name: z.string(), labels: z.record(z.string(), z.string()) })) }),
});

interface Example {
  canary: z.infer<typeof CanaryManifest>;
  virtualService: z.infer<typeof VirtualServiceManifest>;
  destinationRule: z.infer<typeof DestinationRuleManifest>;
}

/** A fresh copy of the example, checked every INTERVAL, reading the scene's Prometheus. */
function example(prometheusUrl: string): Example {
  const documents = parseAllDocuments(readFileSync(EXAMPLE, 'utf8')).map((d) => d.toJS() as unknown);
  const find = <T extends z.ZodType>(kind: string, schema: T): z.infer<T> => {
    for (const document of documents) {
      const parsed = schema.safeParse(document);
      if (parsed.success) return parsed.data;
    }
    throw new Error(`${EXAMPLE.pathname} has no ${kind} of the shape the broken copies edit`);
  };
  const copy: Example = {
    canary: find('ModelCanary', CanaryManifest),
    virtualService: find('VirtualService', VirtualServiceManifest),
    destinationRule: find('DestinationRule', DestinationRuleManifest),
  };
  copy.canary.spec.analysis.interval = INTERVAL;
  copy.canary.spec.metricsProvider.prometheus.address = prometheusUrl;
  return copy;
}

function all(copy: Example): KubernetesObject[] {
  return [copy.canary, copy.virtualService, copy.destinationRule];
}

function subset(copy: Example, name: string): { name: string; labels: Record<string, string> } {
  const found = copy.destinationRule.spec.subsets.find((s) => s.name === name);
  if (found === undefined) throw new Error(`the example's DestinationRule has no subset ${name}`);
  return found;
}

function predictRoute(copy: Example): z.infer<typeof VirtualServiceManifest>['spec']['http'][number] {
  const route = copy.virtualService.spec.http[0];
  if (route === undefined) throw new Error("the example's VirtualService has no http route");
  return route;
}

/** One broken copy: how it is broken, the scene it needs, and what it shows. */
interface Scenario {
  /** The page's section heading, as written there. */
  heading: string;
  slug: string;
  broken: string;
  scene: Omit<SceneOptions, 'signal'>;
  play(scene: Scene, signal: AbortSignal): Promise<string[]>;
}

const STATUS = ['modelcanary', 'status', MODEL, '-n', NAMESPACE];
const seconds = (ms: number): number => Math.round(ms / 1000);

/** Applies the route and its DestinationRule, waits for Prometheus to have stable's requests, then applies the ModelCanary. */
async function startWithTraffic(scene: Scene, copy: Example, revisions: readonly string[]): Promise<Date> {
  await scene.write(FILE, all(copy));
  await scene.create([copy.virtualService, copy.destinationRule]);
  await scene.waitForRevisions(revisions);
  const applied = new Date();
  await scene.create([copy.canary]);
  return applied;
}

const SCENARIOS: readonly Scenario[] = [
  {
    heading: '## No data: the checks hold and say "no data for canary"',
    slug: 'no-data',
    broken: 'the canary\'s pods are labelled version: "2.0.1" (the DestinationRule\'s subset v2 selects them so), while spec.canary.version is v2',
    scene: { prometheus: true, canaryLabels: { version: '2.0.1' } },
    play: async (scene, signal) => {
      const copy = example(scene.prometheusUrl);
      subset(copy, 'v2').labels = { version: '2.0.1' };
      const applied = await startWithTraffic(scene, copy, ['v1']);
      await scene.waitFor('a check that holds at 10 %', (c) => c.status?.phase === 'Progressing' && c.status.lastAnalysis?.decision === 'hold', 3 * INTERVAL_MS);
      const status = await scene.run(STATUS);
      const curl = await scene.run([
        'curl', '-s', `${scene.prometheusUrl}/api/v1/query`, '--data-urlencode',
        `query=count by (destination_canonical_revision) (istio_requests_total{destination_canonical_service="${MODEL}"})`,
      ]);
      // Three checks of history from the rollout's start, once Prometheus has scraped their end.
      const start = new Date(Math.floor(applied.getTime() / 1000) * 1000);
      const end = new Date(start.getTime() + 3 * INTERVAL_MS);
      await pause(Math.max(0, end.getTime() + 2_000 - Date.now()), signal);
      signal.throwIfAborted();
      const backtest = await scene.run(['modelcanary', 'backtest', '--canary', FILE, '--prometheus', scene.prometheusUrl, '--start', iso(start), '--end', iso(end)]);
      return [status, curl, backtest];
    },
  },
  {
    heading: '### Before the start: "has no requests of stable"',
    slug: 'no-stable-requests',
    broken: 'stable\'s pods are labelled version: "1.0.0" (the DestinationRule\'s subset v1 selects them so), while spec.stable.version is v1',
    scene: { prometheus: true, stableLabels: { version: '1.0.0' } },
    play: async (scene) => {
      const copy = example(scene.prometheusUrl);
      subset(copy, 'v1').labels = { version: '1.0.0' };
      await startWithTraffic(scene, copy, ['1.0.0']);
      await scene.waitFor('Preflight=False MetricsUnavailable', (c) => falseCondition(c, 'Preflight')?.reason === 'MetricsUnavailable', PREFLIGHT_MS);
      return [await scene.run(STATUS)];
    },
  },
  {
    heading: '## Prometheus unreachable',
    slug: 'prometheus-unreachable',
    broken: 'spec.metricsProvider.prometheus.address is a loopback port nobody listens on (the operator allowed it)',
    scene: { prometheus: false },
    play: async (scene) => {
      const copy = example(scene.prometheusUrl);
      await scene.write(FILE, all(copy));
      await scene.create(all(copy));
      await scene.waitFor('Preflight=False MetricsUnavailable', (c) => falseCondition(c, 'Preflight')?.reason === 'MetricsUnavailable', PREFLIGHT_MS);
      await scene.waitForEvent('MetricsUnavailable', PREFLIGHT_MS);
      return [await scene.run(['kubectl', 'describe', 'mcan', MODEL, '-n', NAMESPACE])];
    },
  },
  {
    heading: '## Prometheus unreachable',
    slug: 'prometheus-down',
    broken: 'Prometheus is stopped once the rollout is at its 10 % step; spec.analysis.inconclusiveLimit is 3, so that the alarm comes after 3 checks rather than 10',
    scene: { prometheus: true },
    play: async (scene) => {
      const copy = example(scene.prometheusUrl);
      const limit = 3;
      copy.canary.spec.analysis.inconclusiveLimit = limit;
      await startWithTraffic(scene, copy, ['v1']);
      await scene.waitFor('the 10 % step', (c) => c.status?.phase === 'Progressing' && c.status.canaryWeight === 10, PREFLIGHT_MS);
      await scene.stopPrometheus();
      await scene.waitFor('MetricsAvailable=False NoEvidence', (c) => falseCondition(c, 'MetricsAvailable')?.reason === 'NoEvidence', (limit + 3) * INTERVAL_MS);
      return [await scene.run(STATUS)];
    },
  },
  {
    heading: '## Route refused',
    slug: 'route-refused',
    broken: `the VirtualService's route "predict" also sends 10 % to host ${MODEL}-legacy, port 8080`,
    scene: { prometheus: false },
    play: async (scene) => {
      const copy = example(scene.prometheusUrl);
      const route = predictRoute(copy);
      route.route = [...route.route.map((d) => ({ ...d, weight: 90 })), { destination: { host: `${MODEL}-legacy`, port: { number: 8080 } }, weight: 10 }];
      await scene.write(FILE, all(copy));
      await scene.create(all(copy));
      await scene.waitFor('RoutingReady=False RouteRefused', (c) => falseCondition(c, 'RoutingReady')?.reason === 'RouteRefused', PREFLIGHT_MS);
      return [await scene.run(STATUS), await scene.run(['modelcanary', 'route', '--canary', FILE, '--route', FILE, '--weight', '10'])];
    },
  },
  {
    heading: '## Stable serves no traffic',
    slug: 'stable-not-serving',
    broken: 'the VirtualService sends subset v1 0 % and subset v2 100 %, as after the promotion of v2, while spec.stable is still v1',
    scene: { prometheus: false },
    play: async (scene) => {
      const copy = example(scene.prometheusUrl);
      const route = predictRoute(copy);
      route.route = [...route.route.map((d) => ({ ...d, weight: 0 })), { destination: { host: MODEL, subset: 'v2', port: { number: 8080 } }, weight: 100 }];
      await scene.create(all(copy));
      await scene.waitFor('Preflight=False StableNotServing', (c) => falseCondition(c, 'Preflight')?.reason === 'StableNotServing', PREFLIGHT_MS);
      return [await scene.run(STATUS)];
    },
  },
  {
    heading: '## Preflight failing: DestinationRule subsets',
    slug: 'subsets',
    broken: 'the ModelCanary and its VirtualService are applied without the DestinationRule; then the DestinationRule is applied without subset v2',
    scene: { prometheus: false },
    play: async (scene) => {
      const copy = example(scene.prometheusUrl);
      await scene.create([copy.canary, copy.virtualService]);
      const missing = (c: Parameters<typeof falseCondition>[0]): string | undefined => (falseCondition(c, 'Preflight')?.reason === 'SubsetMissing' ? falseCondition(c, 'Preflight')?.message : undefined);
      await scene.waitFor('Preflight=False SubsetMissing (no rule)', (c) => missing(c)?.includes('no DestinationRule in namespace') === true, PREFLIGHT_MS);
      const noRule = await scene.run(STATUS);
      copy.destinationRule.spec.subsets = copy.destinationRule.spec.subsets.filter((s) => s.name !== 'v2');
      const applied = Date.now();
      await scene.create([copy.destinationRule]);
      await scene.waitFor('Preflight=False SubsetMissing (no subset v2)', (c) => missing(c)?.includes('defines subset v2') === true, PREFLIGHT_MS);
      const noSubset = await scene.run(STATUS);
      return [noRule, `(the DestinationRule without subset v2 applied; the controller saw it ${seconds(Date.now() - applied)} s later)`, noSubset];
    },
  },
  {
    heading: '## Notifications do not arrive',
    slug: 'notifications',
    broken: 'spec.notifications names a destination platform-alerts the operator did not define, and a Secret ml-team-slack that is not labelled modelcanary.io/credentials=true',
    scene: { prometheus: true },
    play: async (scene) => {
      const copy = example(scene.prometheusUrl);
      copy.canary.spec.notifications = [{ destination: 'platform-alerts', severity: 'warning' }, { secretRef: { name: 'ml-team-slack' } }];
      const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'ml-team-slack', namespace: NAMESPACE }, stringData: { url: 'https://hooks.slack.com/services/T000/B111/YYYY' } };
      await scene.create([secret]);
      await startWithTraffic(scene, copy, ['v1']);
      await scene.waitFor('Notified=False NotDelivered', (c) => falseCondition(c, 'Notified')?.reason === 'NotDelivered', PREFLIGHT_MS);
      return [await scene.run(STATUS)];
    },
  },
  {
    heading: '## Webhooks refused by --allow-webhook',
    slug: 'webhooks',
    broken: 'a preRollout webhook smoke-test at http://loadtester.test/smoke, with a controller run without --allow-webhook',
    scene: { prometheus: true },
    play: async (scene) => {
      const copy = example(scene.prometheusUrl);
      copy.canary.spec.analysis.webhooks = [{ name: 'smoke-test', type: 'preRollout', url: 'http://loadtester.test/smoke' }];
      await startWithTraffic(scene, copy, ['v1']);
      await scene.waitFor('Preflight=False PreRolloutFailed', (c) => falseCondition(c, 'Preflight')?.reason === 'PreRolloutFailed', PREFLIGHT_MS);
      return [await scene.run(STATUS)];
    },
  },
];

function iso(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Runs the scenarios, at most `parallel` at once, and prints each one's outputs in the page's order as soon as those before it are printed. */
async function runAll(scenarios: readonly Scenario[], parallel: number, signal: AbortSignal): Promise<boolean> {
  const results: Promise<{ ok: true; blocks: string[]; ms: number } | { ok: false; problem: string }>[] = [];
  let running = 0;
  const waiting: (() => void)[] = [];
  const slot = async (): Promise<() => void> => {
    if (running >= parallel) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    return () => {
      running--;
      waiting.shift()?.();
    };
  };
  for (const scenario of scenarios) {
    results.push(
      (async () => {
        const release = await slot();
        const began = Date.now();
        let scene: Scene | undefined;
        try {
          signal.throwIfAborted();
          scene = await openScene({ ...scenario.scene, signal });
          return { ok: true as const, blocks: await scenario.play(scene, signal), ms: Date.now() - began };
        } catch (error) {
          return { ok: false as const, problem: signal.aborted ? 'interrupted' : error instanceof Error ? error.message : String(error) };
        } finally {
          await scene?.close();
          release();
        }
      })(),
    );
  }
  let heading: string | undefined;
  let ok = true;
  for (const [index, scenario] of scenarios.entries()) {
    const result = await results[index];
    if (result === undefined) continue;
    if (scenario.heading !== heading) {
      heading = scenario.heading;
      process.stdout.write(`${heading}\n\n`);
    }
    process.stdout.write(`[${scenario.slug}] ${scenario.broken}\n\n`);
    if (!result.ok) {
      ok = false;
      process.stdout.write(`NOT REPRODUCED: ${result.problem}\n\n`);
      continue;
    }
    for (const block of result.blocks) process.stdout.write(`${block}\n\n`);
    process.stdout.write(`[${scenario.slug}: ${seconds(result.ms)} s]\n\n`);
  }
  return ok;
}

async function run(): Promise<number> {
  const { values } = parseArgs({ options: { only: { type: 'string', multiple: true }, parallel: { type: 'string', default: '3' } } });
  const parallel = Number(values.parallel);
  const only = values.only ?? [];
  const unknown = only.filter((slug) => !SCENARIOS.some((s) => s.slug === slug));
  if (!Number.isInteger(parallel) || parallel < 1 || unknown.length > 0) {
    process.stderr.write(`usage: npm run docs:troubleshooting [-- [--only SLUG]... [--parallel N]]; slugs: ${SCENARIOS.map((s) => s.slug).join(', ')}\n`);
    return 2;
  }
  const missing = prometheusMissing(process.env.PATH);
  if (missing !== undefined) {
    process.stderr.write(`docs:troubleshooting: ${missing}\n`);
    return 2;
  }
  const interrupted = new AbortController();
  const interrupt = (): void => {
    interrupted.abort();
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const began = Date.now();
  const ok = await runAll(SCENARIOS.filter((s) => only.length === 0 || only.includes(s.slug)), parallel, interrupted.signal);
  process.stdout.write(`docs/troubleshooting.md's outputs ${ok ? 'reproduced' : 'NOT all reproduced'} in ${seconds(Date.now() - began)} s\n`);
  process.off('SIGINT', interrupt);
  process.off('SIGTERM', interrupt);
  return ok ? 0 : 1;
}

process.exitCode = await run();
