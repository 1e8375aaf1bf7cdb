// A pass starts from the informer's copy only when it is known to be the newest; otherwise it
// reads the API server. A stale start would cost a 409, never a wrong write; these cases show it
// does not happen where the cache can know better.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InformedCanaries } from '../src/controller/informed-canaries.ts';
import { MemoryCanaries, World } from './helpers/fakes.ts';

type Json = Record<string, any>;

const object = (name: string): Json => ({ apiVersion: 'modelcanary.io/v1alpha1', kind: 'ModelCanary', metadata: { name, namespace: 'ml-serving' }, spec: {} });

function setUp(): { memory: MemoryCanaries; cache: InformedCanaries; watch: () => Promise<Json> } {
  const memory = new MemoryCanaries();
  memory.create(object('chat'));
  const cache = new InformedCanaries(memory);
  // What the informer would bring now.
  const watch = async (): Promise<Json> => (await memory.get('ml-serving', 'chat')) as Json;
  return { memory, cache, watch };
}

test('an object the watch brought is read from the cache; after our write, the write until its echo comes', async () => {
  const { memory, cache, watch } = setUp();
  cache.seen(await watch());
  const first = (await cache.get('ml-serving', 'chat')) as Json;
  assert.equal(cache.reads, 0);
  const written = await cache.replaceStatus(first, { phase: 'Progressing' });
  assert.notEqual(written, 'conflict');
  assert.equal(((await cache.get('ml-serving', 'chat')) as Json).status.phase, 'Progressing');
  // The echo of our write: still from the cache.
  cache.seen(await watch());
  assert.equal(((await cache.get('ml-serving', 'chat')) as Json).status.phase, 'Progressing');
  assert.equal(cache.reads, 0);
  assert.equal(memory.statusWrites, 1);
});

test('an event that is not the echo of our write makes the next pass read the server: a slow watch or someone else', async () => {
  const { memory, cache, watch } = setUp();
  const before = await watch();
  cache.seen(before);
  await cache.replaceStatus((await cache.get('ml-serving', 'chat')) as Json, { phase: 'Progressing' });
  // A person edits the spec before the watch has brought our write.
  memory.edit('ml-serving', 'chat', (o) => {
    o.spec.suspend = true;
  });
  cache.seen(await watch());
  const read = (await cache.get('ml-serving', 'chat')) as Json;
  assert.equal(cache.reads, 1);
  assert.equal(read.spec.suspend, true);
  assert.equal(read.status.phase, 'Progressing');
  // A late event of the version before both: the cache waits for the version it read, so it reads again.
  cache.seen(before);
  await cache.get('ml-serving', 'chat');
  assert.equal(cache.reads, 2);
});

test('a write refused with a conflict is followed by a read of the server; a deleted object is gone', async () => {
  const { memory, cache, watch } = setUp();
  cache.seen(await watch());
  const stale = (await cache.get('ml-serving', 'chat')) as Json;
  memory.edit('ml-serving', 'chat', (o) => {
    o.metadata.annotations = { 'modelcanary.io/promote': '{}' };
  });
  assert.equal(await cache.replaceStatus(stale, { phase: 'Progressing' }), 'conflict');
  const fresh = (await cache.get('ml-serving', 'chat')) as Json;
  assert.equal(cache.reads, 1);
  assert.deepEqual(fresh.metadata.annotations, { 'modelcanary.io/promote': '{}' });
  cache.gone(fresh);
  memory.delete('ml-serving', 'chat');
  assert.equal(await cache.get('ml-serving', 'chat'), undefined);
});

test('rollouts end the same through the cache, with a watch that brings every write late, and with fewer reads of the server', async () => {
  const w = new World();
  const memory = w.canaries;
  const cache = new InformedCanaries(memory);
  w.deps.canaries = cache;
  // The watch: every object's newest version, brought one pass late.
  let pending: Json[] = [];
  const deliverLate = async (): Promise<void> => {
    for (const o of pending) cache.seen(o);
    pending = [];
    for (const name of ['first', 'second']) pending.push((await memory.get('ml-serving', name)) as Json);
  };
  w.metrics.serve(w.clock.now(), 'v1', 1000);
  await w.add('first');
  await w.add('second');
  let passes = 0;
  for (let round = 0; round < 6; round++) {
    for (const name of ['first', 'second']) {
      await deliverLate();
      for (let i = 0; i < 10; i++) {
        passes++;
        const result = await w.pass(name);
        await deliverLate();
        if (result.requeueAfterMs !== 0) break;
      }
    }
    w.clock.advance(30_000);
    w.metrics.serve(w.clock.now(), 'v1', 1000);
    w.metrics.serve(w.clock.now(), 'v2', 1000, 0);
  }
  for (const name of ['first', 'second']) assert.equal((await w.status(name)).phase, 'Succeeded', name);
  assert.ok(cache.reads < passes / 2, `${cache.reads} reads of the server in ${passes} passes`);
});
