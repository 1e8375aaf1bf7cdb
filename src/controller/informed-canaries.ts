// The ModelCanary a pass starts from, taken from the informer's cache when the cache is known to
// hold the newest version, and read from the API server when it may not.
//
// Every write of a pass is fenced on the resourceVersion it read, so a stale start costs a 409
// and a fresh read, never a wrong write. The cache still avoids that cost where it can: after
// our own write it holds the object the server answered with, and waits for the watch to echo
// that resourceVersion. An event with another version meanwhile is either an older one the watch
// was slow to bring or a newer write by someone else; resourceVersions are not to be compared,
// so either makes the entry unsure and the next pass reads from the server.

import type { ModelCanaryStatus } from '../api/status.ts';
import type { CanaryClient } from './reconciler.ts';

type Json = Record<string, unknown>;

interface Entry {
  object: Json;
  /** The cache holds the newest version we know of. */
  sure: boolean;
  /** The resourceVersion of our last write or read, until the watch brings it. */
  awaiting?: string | undefined;
}

export class InformedCanaries implements CanaryClient {
  private readonly inner: CanaryClient;
  private readonly entries = new Map<string, Entry>();
  /** Reads that went to the API server (the tests count them). */
  reads = 0;

  constructor(inner: CanaryClient) {
    this.inner = inner;
  }

  /** The informer added or updated an object. */
  seen(object: Json): void {
    const key = keyOf(object);
    const entry = this.entries.get(key);
    const version = versionOf(object);
    if (entry?.awaiting !== undefined && entry.awaiting !== version) {
      entry.sure = false;
      return;
    }
    this.entries.set(key, { object, sure: true });
  }

  /** The informer saw the object deleted. */
  gone(object: Json): void {
    this.entries.delete(keyOf(object));
  }

  async get(namespace: string, name: string, signal?: AbortSignal): Promise<Json | undefined> {
    const key = `${namespace}/${name}`;
    const entry = this.entries.get(key);
    if (entry?.sure === true) return entry.object;
    this.reads++;
    const fresh = await this.inner.get(namespace, name, signal);
    if (fresh === undefined) {
      this.entries.delete(key);
      return undefined;
    }
    const version = versionOf(fresh);
    // The watch has already brought this version, or will: wait for it only when it has not.
    const cached = this.entries.get(key);
    this.entries.set(key, { object: fresh, sure: true, awaiting: cached !== undefined && versionOf(cached.object) === version ? undefined : version });
    return fresh;
  }

  async replaceStatus(object: Json, status: ModelCanaryStatus, signal?: AbortSignal): Promise<Json | 'conflict'> {
    return this.wrote(object, await this.inner.replaceStatus(object, status, signal));
  }

  async setFinalizers(object: Json, finalizers: string[], signal?: AbortSignal): Promise<Json | 'conflict'> {
    return this.wrote(object, await this.inner.setFinalizers(object, finalizers, signal));
  }

  private wrote(object: Json, result: Json | 'conflict'): Json | 'conflict' {
    const key = keyOf(object);
    if (result === 'conflict') {
      const entry = this.entries.get(key);
      if (entry !== undefined) entry.sure = false;
      return result;
    }
    this.entries.set(key, { object: result, sure: true, awaiting: versionOf(result) });
    return result;
  }
}

function keyOf(object: Json): string {
  const metadata = (object.metadata ?? {}) as { name?: string; namespace?: string };
  return `${metadata.namespace ?? 'default'}/${metadata.name ?? ''}`;
}

function versionOf(object: Json): string | undefined {
  return ((object.metadata ?? {}) as { resourceVersion?: string }).resourceVersion;
}
