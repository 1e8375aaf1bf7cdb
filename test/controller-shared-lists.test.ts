// Starting many rollouts in one namespace lists its DestinationRules once, not once per rollout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedListStore } from '../src/controller/kube-store.ts';
import { MemoryObjectStore, type ObjectStore } from '../src/routing/router.ts';

type Json = Record<string, unknown>;

/** Counts the lists that reach the store, and can hold them until released. */
class CountingStore implements ObjectStore {
  lists = 0;
  failNext = false;
  private readonly inner = new MemoryObjectStore();
  private release: (() => void) | undefined;
  private held: Promise<void> | undefined;

  put(object: Json): void {
    this.inner.put(object);
  }

  hold(): void {
    this.held = new Promise((resolve) => {
      this.release = resolve;
    });
  }

  letGo(): void {
    this.release?.();
    this.held = undefined;
  }

  get(apiVersion: string, kind: string, namespace: string, name: string): Promise<Json | undefined> {
    return this.inner.get(apiVersion, kind, namespace, name);
  }

  async list(apiVersion: string, kind: string, namespace: string): Promise<Json[]> {
    this.lists++;
    await this.held;
    if (this.failNext) {
      this.failNext = false;
      throw new Error('connection reset');
    }
    return this.inner.list(apiVersion, kind, namespace);
  }

  replace(object: Json): Promise<'ok' | 'conflict'> {
    return this.inner.replace(object);
  }
}

const rule = (name: string, namespace = 'ml'): Json => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace }, spec: { host: name, subsets: [{ name: 'v1' }] } });

test('a thousand preflights in one namespace at once cost one list; the next list comes after the time to keep it', async () => {
  const counting = new CountingStore();
  for (let i = 0; i < 20; i++) counting.put(rule(`model-${String(i)}`));
  let now = 0;
  const store = new SharedListStore(counting, 5000, () => now);
  counting.hold();
  const lists = Array.from({ length: 1000 }, () => store.list('networking.istio.io/v1', 'DestinationRule', 'ml'));
  counting.letGo();
  const answers = await Promise.all(lists);
  assert.equal(counting.lists, 1);
  assert.ok(answers.every((items) => items.length === 20));
  // Another namespace is its own list.
  await store.list('networking.istio.io/v1', 'DestinationRule', 'other');
  assert.equal(counting.lists, 2);
  // A rule created now is seen once the kept list is older than 5 s.
  counting.put(rule('late-model'));
  now = 4000;
  assert.equal((await store.list('networking.istio.io/v1', 'DestinationRule', 'ml')).length, 20);
  now = 5001;
  assert.equal((await store.list('networking.istio.io/v1', 'DestinationRule', 'ml')).length, 21);
  assert.equal(counting.lists, 3);
});

test('a failed list is not kept, and a caller that gives up leaves the list to the others', async () => {
  const counting = new CountingStore();
  counting.put(rule('fraud-detector'));
  const store = new SharedListStore(counting, 5000, () => 0);
  counting.failNext = true;
  await assert.rejects(store.list('networking.istio.io/v1', 'DestinationRule', 'ml'), /connection reset/);
  assert.equal((await store.list('networking.istio.io/v1', 'DestinationRule', 'ml')).length, 1);
  assert.equal(counting.lists, 2);

  const fresh = new SharedListStore(counting, 5000, () => 0);
  counting.hold();
  const impatient = new AbortController();
  const first = fresh.list('networking.istio.io/v1', 'DestinationRule', 'ml', impatient.signal);
  const second = fresh.list('networking.istio.io/v1', 'DestinationRule', 'ml');
  impatient.abort(new Error('pass deadline'));
  await assert.rejects(first, /pass deadline/);
  counting.letGo();
  assert.equal((await second).length, 1);
  assert.equal(counting.lists, 3);
});
