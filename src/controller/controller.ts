// The loop around reconcile: an informer on ModelCanaries feeds a work queue that runs one
// reconcile per ModelCanary at a time, retries failures with backoff, and comes back at the
// analysis interval (with jitter, so a thousand canaries do not all query at once).

import { CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../api/modelcanary.ts';
import { reconcile, type ReconcileDeps } from './reconciler.ts';

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
  /** A reconcile taking longer is abandoned and retried (a request may hang on a broken connection). Default 60 s. */
  reconcileTimeoutMs?: number;
  /** Called after every reconcile with its duration, for the controller's metrics. */
  onReconciled?: (key: string, seconds: number) => void;
}

interface Entry {
  timer?: ReturnType<typeof setTimeout> | undefined;
  due?: number;
  running: boolean;
  again: boolean;
  failures: number;
}

export class Controller {
  private readonly deps: ReconcileDeps;
  private readonly options: ControllerOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly informers: Informer<KubernetesObject>[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private synced = false;

  constructor(deps: ReconcileDeps, options: ControllerOptions) {
    this.deps = deps;
    this.options = options;
  }

  /** True once every informer has listed: the caches are synced. */
  get ready(): boolean {
    return this.synced;
  }

  async start(): Promise<void> {
    const api = this.options.kubeConfig.makeApiClient(CustomObjectsApi);
    const namespaces = this.options.namespaces ?? [];
    const scopes = namespaces.length === 0 ? [undefined] : namespaces;
    for (const namespace of scopes) {
      const path = namespace === undefined ? `/apis/${GROUP}/${VERSION}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`;
      const labelSelector = this.options.selector;
      const list = async (): Promise<{ items: KubernetesObject[]; metadata: { resourceVersion?: string } }> =>
        (namespace === undefined
          ? await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, labelSelector })
          : await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, labelSelector })) as { items: KubernetesObject[]; metadata: { resourceVersion?: string } };
      const informer = makeInformer(this.options.kubeConfig, path, list, labelSelector);
      const enqueue = (object: KubernetesObject): void => {
        this.enqueue(`${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`, 0);
      };
      informer.on('add', enqueue);
      informer.on('update', enqueue);
      informer.on('delete', enqueue);
      // client-node's informer stops for good after a broken connection: start it again.
      informer.on('error', () => {
        if (this.stopped) return;
        setTimeout(() => void informer.start().catch(() => undefined), 1000);
      });
      this.informers.push(informer);
      await informer.start();
    }
    this.synced = true;
  }

  /** Stops taking work and waits for the reconciles in flight to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const informer of this.informers) await informer.stop();
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    await Promise.all(this.inFlight);
  }

  enqueue(key: string, delayMs: number): void {
    if (this.stopped) return;
    const entry = this.entries.get(key) ?? { running: false, again: false, failures: 0 };
    this.entries.set(key, entry);
    if (entry.running) {
      if (delayMs === 0) entry.again = true;
      else this.schedule(key, entry, delayMs);
      return;
    }
    this.schedule(key, entry, delayMs);
  }

  private schedule(key: string, entry: Entry, delayMs: number): void {
    const due = Date.now() + delayMs;
    if (entry.timer !== undefined && entry.due !== undefined && entry.due <= due) return;
    clearTimeout(entry.timer);
    entry.due = due;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      entry.due = undefined;
      this.run(key, entry);
    }, delayMs);
  }

  private run(key: string, entry: Entry): void {
    if (this.stopped) return;
    if (entry.running) {
      entry.again = true;
      return;
    }
    entry.running = true;
    const [namespace = 'default', name = ''] = key.split('/');
    const started = performance.now();
    const work = withTimeout(reconcile(namespace, name, this.deps), this.options.reconcileTimeoutMs ?? 60_000, key)
      .then((result) => {
        entry.failures = 0;
        if (result.requeueAfterMs !== undefined) this.schedule(key, entry, this.jitter(result.requeueAfterMs));
      })
      .catch((error: unknown) => {
        entry.failures++;
        this.options.onError?.(key, error);
        this.schedule(key, entry, Math.min(60_000, 500 * 2 ** Math.min(entry.failures, 7)));
      })
      .finally(() => {
        this.options.onReconciled?.(key, (performance.now() - started) / 1000);
        entry.running = false;
        this.inFlight.delete(work);
        if (entry.again) {
          entry.again = false;
          this.schedule(key, entry, 0);
        }
      });
    this.inFlight.add(work);
  }

  /** Up to 10 % later than asked, never earlier: checks must not come before their interval. */
  private jitter(ms: number): number {
    return ms === 0 ? 0 : Math.round(ms * (1 + 0.1 * (this.options.random ?? Math.random)()));
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, key: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`reconcile of ${key} took longer than ${ms} ms`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
  });
}
