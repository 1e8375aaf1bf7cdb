// The sandbox's etcd: objects by resource, one global revision counter, and for each resource a
// bounded window of past events from which a watch can resume. A watch that asks to resume from
// before the window gets 410 Gone, as it does from a real API server after compaction.

import { clone, type JsonObject } from './json.ts';

export interface Metadata {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: unknown[];
  [field: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: Metadata;
  [field: string]: unknown;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** A committed change. `previous` is the state before it, so that a filtered watch can tell entering from leaving. */
export interface StoredEvent {
  type: EventType;
  object: KubeObject;
  previous: KubeObject | undefined;
  revision: number;
}

export type Listener = (event: StoredEvent) => void;

interface Collection {
  objects: Map<string, KubeObject>;
  events: StoredEvent[];
  /** A watch from a revision below this one has missed events that are no longer retained. */
  oldestResumable: number;
  listeners: Map<Listener, () => void>;
}

export function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

export class Store {
  private revision: number;
  private readonly collections = new Map<string, Collection>();
  private readonly window: number;

  /** `window`: events retained per resource for resuming watches. */
  constructor(window: number, firstRevision = 1) {
    this.window = window;
    this.revision = firstRevision;
  }

  currentRevision(): number {
    return this.revision;
  }

  get(storage: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.collection(storage).objects.get(objectKey(namespace, name));
    return found === undefined ? undefined : clone(found);
  }

  /** Objects in key order (namespace, then name), as etcd lists them. */
  list(storage: string, namespace?: string): KubeObject[] {
    const objects = [...this.collection(storage).objects.entries()]
      .filter(([, o]) => namespace === undefined || o.metadata.namespace === namespace)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => clone(o));
    return objects;
  }

  /** Stores the change under a new revision, tells the listeners, and returns the object as stored. */
  commit(storage: string, type: EventType, object: KubeObject): KubeObject {
    const collection = this.collection(storage);
    const key = objectKey(object.metadata.namespace, object.metadata.name ?? '');
    const previous = collection.objects.get(key);
    this.revision += 1;
    const stored = clone(object);
    stored.metadata.resourceVersion = String(this.revision);
    if (type === 'DELETED') collection.objects.delete(key);
    else collection.objects.set(key, stored);

    const event: StoredEvent = { type, object: stored, previous, revision: this.revision };
    collection.events.push(event);
    while (collection.events.length > this.window) {
      const dropped = collection.events.shift();
      if (dropped !== undefined) collection.oldestResumable = dropped.revision;
    }
    for (const listener of [...collection.listeners.keys()]) listener(event);
    return clone(stored);
  }

  /** The retained events after `revision`, or 'expired' when some of them are no longer retained. */
  eventsSince(storage: string, revision: number): StoredEvent[] | 'expired' {
    const collection = this.collection(storage);
    if (revision < collection.oldestResumable) return 'expired';
    return collection.events.filter((e) => e.revision > revision);
  }

  oldestResumable(storage: string): number {
    return this.collection(storage).oldestResumable;
  }

  /** Calls `listener` with every committed change, and `dropped` if the whole resource goes away. */
  subscribe(storage: string, listener: Listener, dropped: () => void): () => void {
    const listeners = this.collection(storage).listeners;
    listeners.set(listener, dropped);
    return () => listeners.delete(listener);
  }

  /** Forgets every retained event, as etcd compaction does: watches can resume only from now on. */
  compact(): void {
    for (const collection of this.collections.values()) {
      collection.events = [];
      collection.oldestResumable = this.revision;
    }
  }

  /** Drops a whole resource (its CRD was deleted) without events; its watchers are told. */
  drop(storage: string): void {
    const collection = this.collections.get(storage);
    this.collections.delete(storage);
    for (const dropped of collection?.listeners.values() ?? []) dropped();
  }

  private collection(storage: string): Collection {
    let collection = this.collections.get(storage);
    if (collection === undefined) {
      collection = { objects: new Map(), events: [], oldestResumable: 0, listeners: new Map() };
      this.collections.set(storage, collection);
    }
    return collection;
  }
}

export function asKubeObject(value: JsonObject): KubeObject {
  const metadata = value.metadata;
  return { ...value, metadata: typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata) ? (metadata as Metadata) : {} };
}
