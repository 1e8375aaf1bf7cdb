// In-memory fakes of our own interfaces, for reconciler tests where one call is one pass: the
// ModelCanary objects with resourceVersion preconditions, a recording event recorder, a manual
// clock, and a metrics provider whose counters the test drives.
import type { ModelCanaryStatus, Notification, Severity } from '../../src/api/status.ts';
import type { NotificationTarget } from '../../src/api/modelcanary.ts';
import type { NotificationOutbox } from '../../src/controller/outbox.ts';
import type { Sample } from '../../src/api/observation.ts';
import type { MetricsProvider, VersionSelector } from '../../src/metrics/provider.ts';
import type { CanaryClient, EventRecorder, ReconcileDeps } from '../../src/controller/reconciler.ts';
import { reconcile, type ReconcileResult } from '../../src/controller/reconciler.ts';
import { MemoryObjectStore } from '../../src/routing/router.ts';

type Json = Record<string, any>;

export class ManualClock {
  private ms: number;

  constructor(start = Date.parse('2026-11-26T12:00:00Z')) {
    this.ms = start;
  }

  now(): Date {
    return new Date(this.ms);
  }

  advance(ms: number): void {
    this.ms += ms;
  }
}

/** ModelCanaries with the API server's rules that the reconciler relies on: resourceVersion preconditions, generation, finalizers. */
export class MemoryCanaries implements CanaryClient {
  private readonly objects = new Map<string, Json>();
  private version = 100;
  statusWrites = 0;
  /** Runs before each write lands, to race it. */
  beforeWrite: (() => void) | undefined;

  create(object: Json): void {
    const metadata = { namespace: 'ml-serving', ...object.metadata, generation: 1, resourceVersion: String(++this.version), uid: `uid-${object.metadata.name}` };
    this.objects.set(`${metadata.namespace}/${metadata.name}`, structuredClone({ ...object, metadata }));
  }

  get(namespace: string, name: string): Promise<Json | undefined> {
    const object = this.objects.get(`${namespace}/${name}`);
    return Promise.resolve(object === undefined ? undefined : structuredClone(object));
  }

  /** A user's edit of the spec or metadata: a new resourceVersion, and a new generation when the spec changed. */
  edit(namespace: string, name: string, change: (object: Json) => void): void {
    const object = this.objects.get(`${namespace}/${name}`);
    if (object === undefined) throw new Error(`no ${namespace}/${name}`);
    const before = JSON.stringify(object.spec);
    change(object);
    object.metadata.resourceVersion = String(++this.version);
    if (JSON.stringify(object.spec) !== before) object.metadata.generation = Number(object.metadata.generation) + 1;
  }

  delete(namespace: string, name: string): void {
    this.edit(namespace, name, (object) => {
      object.metadata.deletionTimestamp = '2026-11-26T12:00:00Z';
    });
    this.collect(`${namespace}/${name}`);
  }

  replaceStatus(object: Json, status: ModelCanaryStatus): Promise<Json | 'conflict'> {
    return this.write(object, (current) => {
      this.statusWrites++;
      current.status = JSON.parse(JSON.stringify(status));
    });
  }

  setFinalizers(object: Json, finalizers: string[]): Promise<Json | 'conflict'> {
    return this.write(object, (current) => {
      current.metadata.finalizers = finalizers;
    });
  }

  private write(object: Json, change: (current: Json) => void): Promise<Json | 'conflict'> {
    this.beforeWrite?.();
    const key = `${object.metadata.namespace}/${object.metadata.name}`;
    const current = this.objects.get(key);
    if (current === undefined || current.metadata.resourceVersion !== object.metadata.resourceVersion) return Promise.resolve('conflict');
    change(current);
    current.metadata.resourceVersion = String(++this.version);
    this.collect(key);
    return Promise.resolve(structuredClone(current));
  }

  private collect(key: string): void {
    const object = this.objects.get(key);
    if (object?.metadata.deletionTimestamp !== undefined && (object.metadata.finalizers ?? []).length === 0) this.objects.delete(key);
  }
}

export class RecordedEvents implements EventRecorder {
  readonly events: { type: string; reason: string; message: string }[] = [];

  record(_canary: Json, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    this.events.push({ type, reason, message });
    return Promise.resolve();
  }

  reasons(): string[] {
    return this.events.map((e) => e.reason);
  }

  /** The messages of the events with this reason, oldest first. */
  messages(reason: string): string[] {
    return this.events.filter((e) => e.reason === reason).map((e) => e.message);
  }
}

interface Served {
  at: number;
  version: string;
  requests: number;
  errors: number;
}

/**
 * Istio's counters as a test drives them: `serve` adds requests of a version at a time. Answers
 * are computed from what was served up to the time asked, as Prometheus would. `mode` makes it
 * answer "no series" (empty) or fail (down); `gate` holds every answer until the test opens it.
 */
export class DrivenMetrics implements MetricsProvider {
  private readonly served: Served[] = [];
  mode: 'ok' | 'empty' | 'down' = 'ok';
  /** When set, every answer waits for it; an answer that arrives after its signal aborted is still returned (a provider that ignores cancellation). */
  gate: Promise<void> | undefined;
  /** Runs once, when the next answer is about to be given (after the question was asked). */
  beforeNextAnswer: (() => void) | undefined;
  calls = 0;
  inFlight = 0;
  maxInFlight = 0;

  serve(at: Date, version: string, requests: number, errors = 0): void {
    this.served.push({ at: at.getTime(), version, requests, errors });
  }

  counts(selectors: readonly VersionSelector[], windowMs: number, at: Date): Promise<Map<string, Sample>> {
    return this.answer(selectors, (s) => s.at > at.getTime() - windowMs && s.at <= at.getTime(), at);
  }

  totals(selectors: readonly VersionSelector[], at: Date): Promise<Map<string, Sample>> {
    return this.answer(selectors, (s) => s.at <= at.getTime(), at);
  }

  value(): Promise<Sample> {
    return Promise.resolve({ kind: 'noData', reason: 'not used' });
  }

  private async answer(selectors: readonly VersionSelector[], counted: (s: Served) => boolean, at: Date): Promise<Map<string, Sample>> {
    this.calls++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.gate !== undefined) await this.gate;
      const hook = this.beforeNextAnswer;
      this.beforeNextAnswer = undefined;
      hook?.();
      return new Map(
        selectors.map((selector): [string, Sample] => {
          if (this.mode === 'down') return [selector.key, { kind: 'error', message: 'cannot reach http://prometheus:9090: ECONNREFUSED' }];
          const version = selector.labels.destination_canonical_revision ?? '';
          const ever = this.served.filter((s) => s.version === version && s.at <= at.getTime());
          if (this.mode === 'empty' || ever.length === 0) return [selector.key, { kind: 'noData', reason: `no istio_requests_total series for ${version}` }];
          const mine = ever.filter(counted);
          const requests = mine.reduce((n, s) => n + s.requests, 0);
          const errors = mine.reduce((n, s) => n + s.errors, 0);
          return [selector.key, { kind: 'counts', counts: { requests, errors } }];
        }),
      );
    } finally {
      this.inFlight--;
    }
  }
}

/** A VirtualService with one route to v1 and a DestinationRule with the given subsets, as users start. */
export function meshFor(name: string, subsets: string[] = ['v1', 'v2', 'v3']): { virtualService: Json; destinationRule: Json } {
  return {
    virtualService: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name, namespace: 'ml-serving' },
      spec: { hosts: [name], http: [{ name: 'predict', route: [{ destination: { host: name, subset: 'v1' } }], timeout: '5s' }] },
    },
    destinationRule: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name, namespace: 'ml-serving' },
      spec: { host: name, subsets: subsets.map((v) => ({ name: v, labels: { version: v } })) },
    },
  };
}

export function modelCanary(name: string, analysis: Json = {}, versions: { stable?: string; canary?: string; virtualService?: string } = {}): Json {
  const stable = versions.stable ?? 'v1';
  const canary = versions.canary ?? 'v2';
  const host = versions.virtualService ?? name;
  return {
    apiVersion: 'modelcanary.io/v1alpha1',
    kind: 'ModelCanary',
    metadata: { name, namespace: 'ml-serving' },
    spec: {
      model: name,
      stable: { version: stable, destination: { host, subset: stable } },
      canary: { version: canary, destination: { host, subset: canary } },
      trafficRouting: { istio: { virtualService: versions.virtualService ?? name } },
      analysis: { interval: '30s', steps: [10, 30, 100], minRequests: 100, sequentialTest: { enabled: false }, metrics: [{ name: 'error-rate', type: 'errorRate', max: 0.01 }], ...analysis },
    },
  };
}

/**
 * Delivery as the reconciler sees it, in memory: what was handed over, and a switch to settle
 * it. `sent` counts each notification as a destination would: once per hand-over of a new id.
 */
export class RecordingOutbox implements NotificationOutbox {
  readonly sent: Notification[] = [];
  readonly problems = new Map<string, string[]>();
  least: Severity = 'info';
  /** Settle everything sent as soon as it is handed over. */
  deliverAtOnce = true;
  private readonly settledIds = new Set<string>();
  private readonly seen = new Set<string>();

  wants(_targets: readonly NotificationTarget[] | undefined, severity: Severity): boolean {
    const rank = { info: 0, warning: 1, error: 2 };
    return rank[severity] >= rank[this.least];
  }

  post(_targets: readonly NotificationTarget[] | undefined, owed: readonly Notification[]): void {
    for (const n of owed) {
      if (this.seen.has(n.id)) continue;
      this.seen.add(n.id);
      this.sent.push(n);
      if (this.deliverAtOnce) this.settledIds.add(n.id);
    }
  }

  settled(ids: readonly string[]): Map<string, string[]> {
    return new Map(ids.filter((id) => this.settledIds.has(id)).map((id) => [id, this.problems.get(id) ?? []]));
  }

  /** Settles what was handed over and not settled yet. */
  deliver(problems: string[] = []): void {
    for (const n of this.sent) {
      if (!this.settledIds.has(n.id)) this.problems.set(n.id, problems);
      this.settledIds.add(n.id);
    }
  }

  kinds(): string[] {
    return this.sent.map((n) => n.kind);
  }
}

/** Everything one pass needs, in memory, and a way to run passes. */
export class World {
  readonly clock = new ManualClock();
  readonly canaries = new MemoryCanaries();
  readonly routes = new MemoryObjectStore();
  readonly events = new RecordedEvents();
  readonly metrics = new DrivenMetrics();
  readonly logs: string[] = [];
  readonly deps: ReconcileDeps;

  constructor() {
    this.deps = {
      canaries: this.canaries,
      routes: this.routes,
      providerFor: () => Promise.resolve(this.metrics),
      events: this.events,
      log: { info: (_f, m) => this.logs.push(m), warn: (_f, m) => this.logs.push(m) },
      now: () => this.clock.now(),
    };
  }

  /** A VirtualService, its DestinationRule and a ModelCanary for it. */
  async add(name: string, analysis: Json = {}, versions: { stable?: string; canary?: string; virtualService?: string } = {}): Promise<void> {
    const routeName = versions.virtualService ?? name;
    if ((await this.routes.get('networking.istio.io/v1', 'VirtualService', 'ml-serving', routeName)) === undefined) {
      const mesh = meshFor(routeName);
      this.routes.put(mesh.virtualService);
      this.routes.put(mesh.destinationRule);
    }
    this.canaries.create(modelCanary(name, analysis, versions));
  }

  pass(name: string, signal?: AbortSignal): Promise<ReconcileResult> {
    return reconcile('ml-serving', name, this.deps, signal);
  }

  /** Passes until the object asks to come back later (or not at all): what one moment of the controller does. */
  async settle(name: string, limit = 10): Promise<ReconcileResult> {
    for (let i = 0; i < limit; i++) {
      const result = await this.pass(name);
      if (result.requeueAfterMs !== 0) return result;
    }
    throw new Error(`${name} did not settle in ${limit} passes`);
  }

  /** Both versions serve `requests` in the last interval, the canary with `errors` 5xx. */
  traffic(stable: string, canary: string, requests = 1000, canaryErrors = 0): void {
    this.metrics.serve(this.clock.now(), stable, requests, 0);
    this.metrics.serve(this.clock.now(), canary, requests, canaryErrors);
  }

  async status(name: string): Promise<Json> {
    return ((await this.canaries.get('ml-serving', name)) ?? {}).status ?? {};
  }

  async weights(name: string): Promise<[string, number][]> {
    const vs = (await this.routes.get('networking.istio.io/v1', 'VirtualService', 'ml-serving', name)) as Json;
    return (vs.spec.http as Json[]).find((r) => r.name === 'predict')?.route.map((d: Json) => [d.destination.subset, d.weight ?? 100]);
  }

  async route(name: string): Promise<Json> {
    return (await this.routes.get('networking.istio.io/v1', 'VirtualService', 'ml-serving', name)) as Json;
  }
}
