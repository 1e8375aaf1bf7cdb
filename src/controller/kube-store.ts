// The routers' ObjectStore over the Kubernetes API (client-node): whole objects, replaced with
// their resourceVersion as precondition.

import { ApiException, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { raced } from '../api/abort.ts';
import type { ObjectStore } from '../routing/router.ts';
import { withSignal } from './kube-options.ts';

type Json = Record<string, unknown>;

export class KubeObjectStore implements ObjectStore {
  private readonly api: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async get(apiVersion: string, kind: string, namespace: string, name: string, signal?: AbortSignal): Promise<Json | undefined> {
    const [group = '', version = ''] = apiVersion.split('/');
    try {
      return (await this.api.getNamespacedCustomObject({ group, version, namespace, plural: plural(kind), name }, withSignal(signal))) as Json;
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  async list(apiVersion: string, kind: string, namespace: string, signal?: AbortSignal): Promise<Json[]> {
    const [group = '', version = ''] = apiVersion.split('/');
    try {
      const list = (await this.api.listNamespacedCustomObject({ group, version, namespace, plural: plural(kind) }, withSignal(signal))) as { items?: Json[] };
      return list.items ?? [];
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return [];
      throw error;
    }
  }

  async replace(object: Json, signal?: AbortSignal): Promise<'ok' | 'conflict'> {
    const apiVersion = typeof object.apiVersion === 'string' ? object.apiVersion : '';
    const kind = typeof object.kind === 'string' ? object.kind : '';
    const metadata = (object.metadata ?? {}) as { name?: string; namespace?: string };
    const [group = '', version = ''] = apiVersion.split('/');
    try {
      await this.api.replaceNamespacedCustomObject(
        { group, version, namespace: metadata.namespace ?? 'default', plural: plural(kind), name: metadata.name ?? '', body: object },
        withSignal(signal),
      );
      return 'ok';
    } catch (error) {
      if (error instanceof ApiException && error.code === 409) return 'conflict';
      throw error;
    }
  }
}

/** The resource name of the kinds routers manage: VirtualService → virtualservices, HTTPRoute → httproutes. */
function plural(kind: string): string {
  return `${kind.toLowerCase()}s`;
}

/**
 * Lists shared for a short while: starting a thousand rollouts in one namespace runs the
 * subsets preflight a thousand times, and each listed every DestinationRule of the namespace
 * (N² objects served). Callers within `ttlMs` of a list, or while it runs, share its answer.
 * Reads and writes of single objects go straight through: they are fenced, lists are not.
 * A rule created just after a list is seen by the next preflight, at most `ttlMs` later.
 */
export class SharedListStore implements ObjectStore {
  private readonly inner: ObjectStore;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly lists = new Map<string, { at: number; items: Promise<Json[]> }>();

  constructor(inner: ObjectStore, ttlMs = 5000, now: () => number = Date.now) {
    this.inner = inner;
    this.ttlMs = ttlMs;
    this.now = now;
  }

  get(apiVersion: string, kind: string, namespace: string, name: string, signal?: AbortSignal): Promise<Json | undefined> {
    return this.inner.get(apiVersion, kind, namespace, name, signal);
  }

  replace(object: Json, signal?: AbortSignal): Promise<'ok' | 'conflict'> {
    return this.inner.replace(object, signal);
  }

  list(apiVersion: string, kind: string, namespace: string, signal?: AbortSignal): Promise<Json[]> {
    const key = `${apiVersion}/${kind}/${namespace}`;
    const now = this.now();
    for (const [k, entry] of this.lists) if (now - entry.at > this.ttlMs) this.lists.delete(k);
    const kept = this.lists.get(key);
    if (kept !== undefined) return raced(kept.items, signal);
    // The shared list runs to its own deadline, not the first caller's: a caller that gives up leaves it to the others.
    const items = this.inner.list(apiVersion, kind, namespace, AbortSignal.timeout(30_000));
    const entry = { at: now, items };
    this.lists.set(key, entry);
    // A failed list is not kept: the next caller asks again.
    items.catch(() => {
      if (this.lists.get(key) === entry) this.lists.delete(key);
    });
    return raced(items, signal);
  }
}
