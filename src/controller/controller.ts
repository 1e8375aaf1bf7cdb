// The loop around reconcile: an informer on ModelCanaries feeds a work queue that runs one
// reconcile per ModelCanary at a time, retries failures with backoff, comes back at the
// analysis interval (with jitter, so a thousand canaries do not all query at once), and lists
// everything again every resync period, so that an event the watch lost is not lost for good.
//
// Each pass has a deadline. At the deadline its AbortSignal fires: the requests it has in
// flight are cancelled and it writes nothing more. The next pass of the same ModelCanary starts
// only once the cancelled one has returned, so two passes never run side by side.

import { CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../api/modelcanary.ts';
import { reconcile, type Logger, type ReconcileDeps } from './reconciler.ts';
import { withSignal } from './kube-options.ts';
import { apiErrorMessage } from './kube-errors.ts';
import type { ModelCanaryStatus } from '../api/status.ts';
import type { SlotCensusEntry } from './slots.ts';

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  /** Namespaces to watch; empty: all. */
  namespaces?: string[];
  /** A label selector, to shard ModelCanaries between controllers. */
  selector?: string;
  /** Randomness for jitter, handed in. */
  random?: () => number;
  /** Called when a reconcile fails; the key is retried with backoff. */
  onError?: (key: string, error: unknown) => void;
  /** A pass still running at this deadline is cancelled (its requests aborted, nothing more written) and retried. Default 60 s. */
  reconcileTimeoutMs?: number;
  /** Every this often every ModelCanary is listed again and reconciled, healing lost watch events. Default 5 min; 0 turns it off. */
  resyncMs?: number;
  /** Called after every reconcile with its duration, for the controller's metrics. */
  onReconciled?: (key: string, seconds: number) => void;
  /** Where list and watch failures are reported (rate-limited), with what to check. */
  log?: Logger;
  /** The most passes running at once; the rest wait their turn, a person's edit first. Default 32. */
  workers?: number;
  /** Told of every object the informer brings, so that passes can start from it (InformedCanaries). */
  cache?: { seen(object: Record<string, unknown>): void; gone(object: Record<string, unknown>): void };
}

interface Entry {
  timer?: ReturnType<typeof setTimeout> | undefined;
  due?: number;
  running: boolean;
  /** Waiting for a worker. */
  queued: boolean;
  again: boolean;
  failures: number;
  /** Aborts the pass in flight. */
  abort?: AbortController | undefined;
}

type Lister = () => Promise<{ items: KubernetesObject[]; metadata: { resourceVersion?: string } }>;

export class Controller {
  private readonly deps: ReconcileDeps;
  private readonly options: ControllerOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly informers: (Informer<KubernetesObject> & ObjectCache<KubernetesObject>)[] = [];
  private readonly listers: Lister[] = [];
  private readonly listed = new Set<number>();
  /** Per ModelCanary, what of it last started a pass (see `changed`). */
  private readonly seen = new Map<string, string>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Keys due now, waiting for a worker: a person's edit (urgent) before what a timer brought. */
  private readonly urgent: string[] = [];
  private readonly due: string[] = [];
  private busy = 0;
  private resyncTimer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  private lastComplaint = new Map<string, { at: number; count: number }>();

  constructor(deps: ReconcileDeps, options: ControllerOptions) {
    this.deps = deps;
    this.options = options;
  }

  /** Every ModelCanary in the cache, as the cap on concurrent rollouts counts them. */
  census(): SlotCensusEntry[] {
    return this.informers.flatMap((informer) =>
      informer.list().map((object) => {
        const status = (object as { status?: ModelCanaryStatus }).status;
        const phase = status?.phase;
        const waiting = phase === 'Waiting' ? status?.conditions?.find((c) => c.type === 'Progressing')?.lastTransitionTime : undefined;
        return { key: `${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`, active: phase === 'Progressing' || phase === 'Paused' || phase === 'Failed', waitingSince: waiting };
      }),
    );
  }

  /** True once every watched scope has been listed successfully: until then the controller knows nothing. */
  get ready(): boolean {
    return this.listers.length > 0 && this.listed.size === this.listers.length;
  }

  async start(): Promise<void> {
    const api = this.options.kubeConfig.makeApiClient(CustomObjectsApi);
    const namespaces = this.options.namespaces ?? [];
    const scopes = namespaces.length === 0 ? [undefined] : namespaces;
    const labelSelector = this.options.selector;
    for (const [index, namespace] of scopes.entries()) {
      const path = namespace === undefined ? `/apis/${GROUP}/${VERSION}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`;
      const scope = namespace ?? 'all namespaces';
      const list: Lister = async () => {
        try {
          const result = (namespace === undefined
            ? await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, labelSelector }, withSignal(AbortSignal.timeout(30_000)))
            : await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, labelSelector }, withSignal(AbortSignal.timeout(30_000)))) as Awaited<ReturnType<Lister>>;
          this.listed.add(index);
          return result;
        } catch (error) {
          this.complain(scope, error);
          throw error;
        }
      };
      this.listers.push(list);
      const informer = makeInformer(this.options.kubeConfig, path, list, labelSelector);
      // Only what a person or another controller changes starts a pass: the spec (generation),
      // annotations (requests), finalizers and deletion. The controller's own status writes come
      // back through the watch too; each pass already asked to come back when it is next due.
      const changed = (object: KubernetesObject): void => {
        this.options.cache?.seen(object as Record<string, unknown>);
        const key = keyOf(object);
        const mark = JSON.stringify([object.metadata?.generation, object.metadata?.deletionTimestamp, object.metadata?.finalizers, object.metadata?.annotations]);
        if (this.seen.get(key) === mark) return;
        this.seen.set(key, mark);
        this.enqueue(key, 0, true);
      };
      const deleted = (object: KubernetesObject): void => {
        this.options.cache?.gone(object as Record<string, unknown>);
        this.seen.delete(keyOf(object));
        this.enqueue(keyOf(object), 0, true);
      };
      informer.on('add', changed);
      informer.on('update', changed);
      informer.on('delete', deleted);
      // client-node's informer stops for good after a broken connection: start it again.
      informer.on('error', (error: unknown) => {
        if (this.stopped) return;
        this.complain(scope, error);
        // Checked when the timer fires too: a connection that drops just before stop() must not restart after it.
        setTimeout(() => {
          if (!this.stopped) void informer.start().catch(() => undefined);
        }, 1000);
      });
      this.informers.push(informer);
      await informer.start();
    }
    const resyncMs = this.options.resyncMs ?? 5 * 60_000;
    if (resyncMs > 0) {
      this.resyncTimer = setInterval(() => void this.resync(), resyncMs);
      this.resyncTimer.unref();
    }
  }

  /** Lists every scope again and queues every ModelCanary found, whatever the watch said. */
  async resync(): Promise<void> {
    for (const list of this.listers) {
      if (this.stopped) return;
      const result = await list().catch(() => undefined);
      for (const object of result?.items ?? []) this.enqueue(`${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`, 0);
    }
  }

  /** Stops taking work, cancels the passes in flight and waits for them to return. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resyncTimer);
    for (const informer of this.informers) await informer.stop();
    for (const entry of this.entries.values()) {
      clearTimeout(entry.timer);
      entry.abort?.abort(new Error('the controller is stopping'));
    }
    await Promise.all(this.inFlight);
  }

  /** `urgent`: a change people made (a spec edit, a request), which goes before the passes timers brought. */
  enqueue(key: string, delayMs: number, urgent = false): void {
    if (this.stopped) return;
    const entry = this.entries.get(key) ?? { running: false, queued: false, again: false, failures: 0 };
    this.entries.set(key, entry);
    if (entry.running) {
      if (delayMs === 0) entry.again = true;
      else this.schedule(key, entry, delayMs);
      return;
    }
    if (delayMs === 0) this.makeReady(key, entry, urgent);
    else this.schedule(key, entry, delayMs);
  }

  private schedule(key: string, entry: Entry, delayMs: number): void {
    // A pass that ends after stop() asks for no more: a timer set now would keep the process alive.
    if (this.stopped) return;
    const due = Date.now() + delayMs;
    if (entry.timer !== undefined && entry.due !== undefined && entry.due <= due) return;
    clearTimeout(entry.timer);
    entry.due = due;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      entry.due = undefined;
      this.makeReady(key, entry, false);
    }, delayMs);
  }

  /** Due now: queued for a worker, once; an urgent turn overtakes a queued ordinary one. */
  private makeReady(key: string, entry: Entry, urgent: boolean): void {
    if (entry.running) {
      entry.again = true;
      return;
    }
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.due = undefined;
    if (entry.queued) {
      const waiting = this.due.indexOf(key);
      if (!urgent || waiting < 0) return;
      this.due.splice(waiting, 1);
    }
    entry.queued = true;
    (urgent ? this.urgent : this.due).push(key);
    this.pump();
  }

  /** Starts queued passes while workers are free. */
  private pump(): void {
    const workers = this.options.workers ?? 32;
    while (!this.stopped && this.busy < workers) {
      const key = this.urgent.shift() ?? this.due.shift();
      if (key === undefined) return;
      const entry = this.entries.get(key);
      if (entry === undefined) continue;
      entry.queued = false;
      this.run(key, entry);
    }
  }

  private run(key: string, entry: Entry): void {
    if (this.stopped) return;
    if (entry.running) {
      entry.again = true;
      return;
    }
    entry.running = true;
    this.busy++;
    const [namespace = 'default', name = ''] = key.split('/');
    const started = performance.now();
    const timeoutMs = this.options.reconcileTimeoutMs ?? 60_000;
    const abort = new AbortController();
    entry.abort = abort;
    const deadline = setTimeout(() => {
      abort.abort(new Error(`reconcile of ${key} passed its deadline of ${timeoutMs} ms: cancelled, nothing more written`));
    }, timeoutMs);
    // The pass is awaited to its end, cancelled or not: a retry never runs beside it.
    const work = reconcile(namespace, name, this.deps, abort.signal)
      .then((result) => {
        entry.failures = 0;
        if (result.requeueAfterMs !== undefined) this.schedule(key, entry, this.jitter(result.requeueAfterMs));
      })
      .catch((error: unknown) => {
        // A pass cancelled by stop() did not fail: nothing to report or retry.
        if (this.stopped) return;
        entry.failures++;
        this.options.onError?.(key, abort.signal.aborted ? abort.signal.reason : error);
        this.schedule(key, entry, Math.min(60_000, 500 * 2 ** Math.min(entry.failures, 7)));
      })
      .finally(() => {
        clearTimeout(deadline);
        this.options.onReconciled?.(key, (performance.now() - started) / 1000);
        entry.running = false;
        entry.abort = undefined;
        this.busy--;
        this.inFlight.delete(work);
        if (entry.again) {
          entry.again = false;
          this.makeReady(key, entry, true);
        }
        this.pump();
      });
    this.inFlight.add(work);
  }

  /** Up to 10 % later than asked, never earlier: checks must not come before their interval. */
  private jitter(ms: number): number {
    return ms === 0 ? 0 : Math.round(ms * (1 + 0.1 * (this.options.random ?? Math.random)()));
  }

  /** A list or watch failure, said once a minute per scope (with how many since), with what to check. */
  private complain(scope: string, error: unknown): void {
    const log = this.options.log;
    if (log === undefined || this.stopped) return;
    const now = Date.now();
    const last = this.lastComplaint.get(scope);
    if (last !== undefined && now - last.at < 60_000) {
      last.count++;
      return;
    }
    this.lastComplaint.set(scope, { at: now, count: 0 });
    log.warn({ scope, error: apiErrorMessage(error), since: last?.count ?? 0, hint: hint(error) }, 'cannot list or watch ModelCanaries; retrying');
  }
}

/** What a person should check for a list or watch failure. */
function hint(error: unknown): string {
  const text = apiErrorMessage(error);
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 401 || /\b401\b|Unauthorized/i.test(text)) return 'the API server refused the credentials: check the kubeconfig or the ServiceAccount token';
  if (code === 403 || /\b403\b|Forbidden/i.test(text)) return 'RBAC: the controller needs get, list and watch on modelcanaries.modelcanary.io (see deploy/rbac.yaml)';
  if (code === 404 || /\b404\b/.test(text)) return 'the ModelCanary CRD is not installed: kubectl apply -f crds/modelcanary.yaml';
  if (code === 429 || /\b429\b|TooManyRequests/.test(text)) return 'the API server is busy or still starting (a CRD just installed is served after its cache fills); this passes by itself';
  return 'is the API server address in the kubeconfig reachable from here?';
}

function keyOf(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`;
}
