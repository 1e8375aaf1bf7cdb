// The sandbox through the real @kubernetes/client-node, as the controller will use it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  Watch,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { applyDefaults } from '../src/sandbox/schema.ts';
import { istioManifest } from './helpers/manifests.ts';
import { eventually, sandboxHarness, statusOf, type SandboxHarness } from './helpers/sandbox.ts';

const NS = 'ml-serving';
const MCAN = { group: 'modelcanary.io', version: 'v1alpha1', namespace: NS, plural: 'modelcanaries' };
const PATH = '/apis/modelcanary.io/v1alpha1/namespaces/ml-serving/modelcanaries';
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

let harness: SandboxHarness;
let api: CustomObjectsApi;

before(async () => {
  harness = await sandboxHarness({ namespaces: [NS] });
  api = harness.kubeConfig.makeApiClient(CustomObjectsApi);
});
after(async () => {
  await harness.stop();
});

function canary(name: string, labels: Record<string, string> = {}): Record<string, any> {
  const manifest = istioManifest();
  manifest.metadata = { name, namespace: NS, labels };
  return manifest;
}

async function rejection(promise: Promise<unknown>): Promise<ReturnType<typeof statusOf>> {
  try {
    await promise;
  } catch (error) {
    return statusOf(error);
  }
  assert.fail('expected the request to fail');
}

test('create, get, list with selectors, merge-patch; a replace with a stale resourceVersion is a 409 Conflict', async () => {
  const created = await api.createNamespacedCustomObject({ ...MCAN, body: canary('crud-a', { team: 'fraud' }) });
  await api.createNamespacedCustomObject({ ...MCAN, body: canary('crud-b', { team: 'risk' }) });
  assert.equal(created.metadata.generation, 1);
  assert.match(created.metadata.resourceVersion, /^\d+$/);
  assert.equal(created.metadata.namespace, NS);
  assert.equal(created.spec.analysis.failureThreshold, undefined, 'the ModelCanary CRD declares no defaults: the spec is kept as written');

  const fetched = await api.getNamespacedCustomObject({ ...MCAN, name: 'crud-a' });
  assert.deepEqual(fetched.spec, created.spec);

  const names = async (query: { labelSelector?: string; fieldSelector?: string }): Promise<string[]> =>
    ((await api.listNamespacedCustomObject({ ...MCAN, ...query })).items as KubernetesObject[]).map((o) => o.metadata?.name ?? '').filter((n) => n.startsWith('crud-'));
  assert.deepEqual(await names({}), ['crud-a', 'crud-b']);
  assert.deepEqual(await names({ labelSelector: 'team=risk' }), ['crud-b']);
  assert.deepEqual(await names({ labelSelector: 'team in (fraud,risk),team!=risk' }), ['crud-a']);
  assert.deepEqual(await names({ fieldSelector: 'metadata.name=crud-a' }), ['crud-a']);

  const patched = await api.patchNamespacedCustomObject({ ...MCAN, name: 'crud-a', body: { spec: { canary: { version: 'v3' } } } }, mergePatch);
  assert.equal(patched.spec.canary.version, 'v3');
  assert.equal(patched.spec.stable.version, 'v1', 'merge-patch leaves the rest of the spec alone');
  assert.equal(patched.metadata.generation, 2);
  assert.ok(Number(patched.metadata.resourceVersion) > Number(created.metadata.resourceVersion));

  const stale = await rejection(api.replaceNamespacedCustomObject({ ...MCAN, name: 'crud-a', body: created }));
  assert.equal(stale.code, 409);
  assert.equal(stale.reason, 'Conflict');
  assert.match(stale.message ?? '', /modelcanaries\.modelcanary\.io "crud-a": the object has been modified/);

  const replaced = await api.replaceNamespacedCustomObject({ ...MCAN, name: 'crud-a', body: { ...patched, spec: { ...patched.spec, model: 'renamed' } } });
  assert.equal(replaced.spec.model, 'renamed');

  const missing = await rejection(api.getNamespacedCustomObject({ ...MCAN, name: 'nope' }));
  assert.deepEqual([missing.code, missing.reason, missing.message], [404, 'NotFound', 'modelcanaries.modelcanary.io "nope" not found']);
  const duplicate = await rejection(api.createNamespacedCustomObject({ ...MCAN, body: canary('crud-b') }));
  assert.deepEqual([duplicate.code, duplicate.reason], [409, 'AlreadyExists']);
});

test('status subresource: status writes leave generation alone, main writes cannot change status', async () => {
  const created = await api.createNamespacedCustomObject({ ...MCAN, body: { ...canary('status-a'), status: { phase: 'Succeeded' } } });
  assert.equal(created.status, undefined, 'status is not settable on create');

  const withStatus = await api.patchNamespacedCustomObjectStatus(
    { ...MCAN, name: 'status-a', body: { status: { phase: 'Progressing', canaryWeight: 10 }, spec: { model: 'ignored' } } },
    mergePatch,
  );
  assert.deepEqual(withStatus.status, { phase: 'Progressing', canaryWeight: 10 });
  assert.equal(withStatus.spec.model, created.spec.model, 'a status write changes nothing but status');
  assert.equal(withStatus.metadata.generation, 1);

  const mainWrite = await api.patchNamespacedCustomObject({ ...MCAN, name: 'status-a', body: { spec: { canary: { version: 'v9' } }, status: { phase: 'Failed' } } }, mergePatch);
  assert.equal(mainWrite.status.phase, 'Progressing', 'status in a main-resource write is ignored');
  assert.equal(mainWrite.metadata.generation, 2, 'a spec change counts a generation');

  const replacedStatus = await api.replaceNamespacedCustomObjectStatus({ ...MCAN, name: 'status-a', body: { ...mainWrite, status: { phase: 'Succeeded', observedGeneration: 2 } } });
  assert.equal(replacedStatus.status.phase, 'Succeeded');
  assert.equal(replacedStatus.metadata.generation, 2);

  const labelOnly = await api.patchNamespacedCustomObject({ ...MCAN, name: 'status-a', body: { metadata: { labels: { seen: 'yes' } } } }, mergePatch);
  assert.equal(labelOnly.metadata.generation, 2, 'metadata changes do not count a generation');
  const noop = await api.patchNamespacedCustomObject({ ...MCAN, name: 'status-a', body: { metadata: { labels: { seen: 'yes' } } } }, mergePatch);
  assert.equal(noop.metadata.resourceVersion, labelOnly.metadata.resourceVersion, 'a write that changes nothing keeps the resourceVersion');
});

test('finalizers: delete sets deletionTimestamp and keeps the object until the last finalizer is removed', async () => {
  await api.createNamespacedCustomObject({ ...MCAN, body: { ...canary('final-a'), metadata: { name: 'final-a', finalizers: ['modelcanary.io/restore-routes'] } } });
  await api.deleteNamespacedCustomObject({ ...MCAN, name: 'final-a' });
  const deleting = await api.getNamespacedCustomObject({ ...MCAN, name: 'final-a' });
  assert.match(deleting.metadata.deletionTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.deepEqual(deleting.metadata.finalizers, ['modelcanary.io/restore-routes']);

  const refused = await rejection(api.patchNamespacedCustomObject({ ...MCAN, name: 'final-a', body: { metadata: { finalizers: ['modelcanary.io/restore-routes', 'other.io/x'] } } }, mergePatch));
  assert.equal(refused.code, 422);
  assert.match(refused.message ?? '', /no new finalizers can be added if the object is being deleted/);

  await api.patchNamespacedCustomObject({ ...MCAN, name: 'final-a', body: { metadata: { finalizers: null } } }, mergePatch);
  const gone = await rejection(api.getNamespacedCustomObject({ ...MCAN, name: 'final-a' }));
  assert.equal(gone.code, 404);
});

test('a ModelCanary that breaks the CRD schema is refused with 422 naming each field; unknown fields are pruned, or refused when strict', async () => {
  const bad = canary('invalid-a');
  delete bad.spec.model;
  bad.spec.analysis.steps = [200];
  bad.spec.analysis.metrics[0].type = 'errorRat';
  const invalid = await rejection(api.createNamespacedCustomObject({ ...MCAN, body: bad }));
  assert.equal(invalid.code, 422);
  assert.equal(invalid.reason, 'Invalid');
  const fields = (invalid.details.causes as { field: string }[]).map((c) => c.field);
  assert.ok(fields.includes('spec.model'), JSON.stringify(fields));
  assert.ok(fields.includes('spec.analysis.steps[0]'), JSON.stringify(fields));
  assert.ok(fields.includes('spec.analysis.metrics[0].type'), JSON.stringify(fields));
  assert.match(invalid.message ?? '', /spec\.model: Required value/);
  assert.match(invalid.message ?? '', /spec\.analysis\.steps\[0\]: Invalid value: 200: spec\.analysis\.steps\[0\] in body should be less than or equal to 100/);
  assert.match(invalid.message ?? '', /Unsupported value: "errorRat": supported values: "errorRate", "latency", "prometheus", "outliers"/);

  const extra = canary('pruned-a');
  extra.spec.analysis.failureThresold = 5;
  const pruned = await api.createNamespacedCustomObject({ ...MCAN, body: extra });
  assert.equal(pruned.spec.analysis.failureThresold, undefined, 'the unknown field is dropped, as a real server prunes it');

  const strict = await rejection(api.createNamespacedCustomObject({ ...MCAN, body: { ...extra, metadata: { name: 'strict-a' } }, fieldValidation: 'Strict' }));
  assert.equal(strict.code, 400);
  assert.match(strict.message ?? '', /strict decoding error: unknown field "spec\.analysis\.failureThresold"/);
});

test('an informer sees ADDED, MODIFIED and DELETED, and carries on after the server ends its watch', async () => {
  const selector = 'informer=yes';
  let lists = 0;
  const list = (): never => {
    lists += 1;
    return api.listNamespacedCustomObject({ ...MCAN, labelSelector: selector }) as never;
  };
  const informer = makeInformer(harness.kubeConfig, PATH, list, selector);
  const seen: string[] = [];
  for (const verb of ['add', 'update', 'delete'] as const) {
    informer.on(verb, (o: KubernetesObject) => seen.push(`${verb} ${o.metadata?.name ?? ''} ${(o as any).spec?.canary?.version ?? ''}`));
  }
  await informer.start();
  try {
    await api.createNamespacedCustomObject({ ...MCAN, body: canary('watched-a', { informer: 'yes' }) });
    await api.patchNamespacedCustomObject({ ...MCAN, name: 'watched-a', body: { spec: { canary: { version: 'v3' } } } }, mergePatch);
    await eventually(() => (seen.includes('update watched-a v3') ? true : undefined), 'the informer to see the update');
    assert.deepEqual(seen.slice(0, 2), ['add watched-a v2', 'update watched-a v3']);

    await eventually(() => (harness.sandbox.openWatches() > 0 ? true : undefined), 'the informer to watch');
    assert.ok(harness.sandbox.faults.dropWatches() >= 1);
    await api.patchNamespacedCustomObject({ ...MCAN, name: 'watched-a', body: { spec: { canary: { version: 'v4' } } } }, mergePatch);
    await eventually(() => (seen.includes('update watched-a v4') ? true : undefined), 'the informer to re-watch after the drop');

    // The informer's resourceVersion falls behind (it sees no event outside its selector); after
    // compaction its resumed watch gets 410 Gone, and it lists again and carries on.
    await eventually(() => (harness.sandbox.openWatches() > 0 ? true : undefined), 'the informer to watch again');
    const listsBefore = lists;
    await api.createNamespacedCustomObject({ ...MCAN, body: canary('unwatched-a') });
    harness.sandbox.faults.compact();
    harness.sandbox.faults.dropWatches();
    await api.patchNamespacedCustomObject({ ...MCAN, name: 'watched-a', body: { spec: { canary: { version: 'v6' } } } }, mergePatch);
    await eventually(() => (seen.includes('update watched-a v6') ? true : undefined), 'the informer to re-list after 410');
    assert.equal(lists, listsBefore + 1, 'the informer listed again');

    await api.deleteNamespacedCustomObject({ ...MCAN, name: 'watched-a' });
    await eventually(() => (seen.some((s) => s.startsWith('delete watched-a')) ? true : undefined), 'the informer to see the delete');
    assert.equal(informer.list(NS).filter((o) => o.metadata?.name === 'watched-a').length, 0);
  } finally {
    await informer.stop();
  }
});

test('a watch from a resourceVersion older than the retained history gets 410 Gone', async () => {
  const first = await api.createNamespacedCustomObject({ ...MCAN, body: canary('old-rv-a') });
  await api.patchNamespacedCustomObject({ ...MCAN, name: 'old-rv-a', body: { metadata: { labels: { x: '1' } } } }, mergePatch);
  harness.sandbox.faults.compact();
  const events: { type: string; object: any }[] = [];
  const done = new Promise<unknown>((resolve) => {
    void new Watch(harness.kubeConfig).watch(PATH, { resourceVersion: first.metadata.resourceVersion }, (type, object) => events.push({ type, object }), resolve);
  });
  await done;
  assert.equal(events.length, 1);
  const [event] = events;
  assert.ok(event);
  assert.deepEqual([event.type, event.object.kind, event.object.code, event.object.reason], ['ERROR', 'Status', 410, 'Expired']);
});

test('a watch resumes from a resourceVersion with exactly the later events, and a selector turns leaving into DELETED', async () => {
  const start = await api.createNamespacedCustomObject({ ...MCAN, body: canary('resume-a', { group: 'one' }) });
  await api.patchNamespacedCustomObject({ ...MCAN, name: 'resume-a', body: { spec: { canary: { version: 'v7' } } } }, mergePatch);
  await api.patchNamespacedCustomObject({ ...MCAN, name: 'resume-a', body: { metadata: { labels: { group: 'two' } } } }, mergePatch);
  const events: string[] = [];
  const controller = await new Watch(harness.kubeConfig).watch(
    PATH,
    { resourceVersion: start.metadata.resourceVersion, labelSelector: 'group=one' },
    (type, object: any) => events.push(`${type} ${object.spec.canary.version}`),
    () => undefined,
  );
  await eventually(() => (events.length >= 2 ? true : undefined), 'the replayed events');
  controller.abort();
  assert.deepEqual(events, ['MODIFIED v7', 'DELETED v7']);
});

test('Leases: create, and replace with a resourceVersion precondition; a Date instead of a MicroTime is refused as on a real server', async () => {
  const leases = harness.kubeConfig.makeApiClient(CoordinationV1Api);
  const lease = (holder: string, resourceVersion?: string): any => ({
    metadata: { name: 'modelcanary-leader', namespace: 'default', ...(resourceVersion === undefined ? {} : { resourceVersion }) },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: new V1MicroTime(), renewTime: new V1MicroTime() },
  });
  const created = await leases.createNamespacedLease({ namespace: 'default', body: lease('pod-a') });
  assert.equal(created.spec?.holderIdentity, 'pod-a');

  const taken = await leases.replaceNamespacedLease({ name: 'modelcanary-leader', namespace: 'default', body: lease('pod-b', created.metadata?.resourceVersion) });
  assert.equal(taken.spec?.holderIdentity, 'pod-b');
  const lost = await rejection(leases.replaceNamespacedLease({ name: 'modelcanary-leader', namespace: 'default', body: lease('pod-a', created.metadata?.resourceVersion) }));
  assert.equal(lost.code, 409);
  assert.equal((await leases.readNamespacedLease({ name: 'modelcanary-leader', namespace: 'default' })).spec?.holderIdentity, 'pod-b');

  const withDate = lease('pod-c');
  withDate.metadata.name = 'date-lease';
  withDate.spec.renewTime = new Date();
  const refused = await rejection(leases.createNamespacedLease({ namespace: 'default', body: withDate }));
  assert.equal(refused.code, 400);
  assert.match(refused.message ?? '', /spec\.renewTime: parsing time .* as "2006-01-02T15:04:05\.000000Z07:00"/);
});

test('an Event recorded through events.k8s.io/v1 is listed by the core/v1 API, where kubectl describe looks for it', async () => {
  const subject = await api.createNamespacedCustomObject({ ...MCAN, body: canary('evented-a') });
  const recorded: any = {
    metadata: { generateName: 'evented-a.' },
    eventTime: new V1MicroTime(),
    reportingController: 'modelcanary.io/controller',
    reportingInstance: 'controller-0',
    action: 'Advance',
    reason: 'StepAdvanced',
    note: 'canary weight 10 % -> 30 %',
    type: 'Normal',
    regarding: { apiVersion: 'modelcanary.io/v1alpha1', kind: 'ModelCanary', name: 'evented-a', namespace: NS, uid: subject.metadata.uid },
  };
  const created = await harness.kubeConfig.makeApiClient(EventsV1Api).createNamespacedEvent({ namespace: NS, body: recorded });
  assert.match(created.metadata?.name ?? '', /^evented-a\.[a-z0-9]{5}$/);

  const core = harness.kubeConfig.makeApiClient(CoreV1Api);
  const listed = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=evented-a,involvedObject.uid=${String(subject.metadata.uid)}` });
  assert.deepEqual(
    listed.items.map((e) => [e.reason, e.message, e.involvedObject.kind, e.reportingComponent]),
    [['StepAdvanced', 'canary weight 10 % -> 30 %', 'ModelCanary', 'modelcanary.io/controller']],
  );

  const incomplete = { ...recorded, reportingController: undefined };
  const refused = await rejection(harness.kubeConfig.makeApiClient(EventsV1Api).createNamespacedEvent({ namespace: NS, body: incomplete }));
  assert.equal(refused.code, 422);
  assert.match(refused.message ?? '', /reportingController: Required value/);
});

test('faults: the next writes fail with 409 or 500, then writes succeed again; objects need an existing namespace', async () => {
  harness.sandbox.faults.failNextWrites(1, 500);
  const failed = await rejection(api.createNamespacedCustomObject({ ...MCAN, body: canary('fault-a') }));
  assert.deepEqual([failed.code, failed.reason], [500, 'InternalError']);
  harness.sandbox.faults.failNextWrites(1, 409);
  const conflicted = await rejection(api.createNamespacedCustomObject({ ...MCAN, body: canary('fault-a') }));
  assert.deepEqual([conflicted.code, conflicted.reason], [409, 'Conflict']);
  await api.createNamespacedCustomObject({ ...MCAN, body: canary('fault-a') });

  const core = harness.kubeConfig.makeApiClient(CoreV1Api);
  const orphan: any = { metadata: { name: 'c' }, data: { a: 'b' } };
  const missing = await rejection(core.createNamespacedConfigMap({ namespace: 'nowhere', body: orphan }));
  assert.deepEqual([missing.code, missing.message], [404, 'namespaces "nowhere" not found']);

  harness.sandbox.faults.setLatency(150);
  const started = performance.now();
  await core.readNamespace({ name: 'default' });
  assert.ok(performance.now() - started >= 140, 'the latency applies to every response');
  harness.sandbox.faults.reset();
});

test('a CRD that declares defaults gets them filled in, nested and in lists, as the real server does (the Gateway API CRD does)', () => {
  const schema = {
    type: 'object',
    properties: {
      rules: { type: 'array', items: { type: 'object', properties: { weight: { type: 'integer', default: 1 }, kind: { type: 'string', default: 'Service' } } } },
      timeout: { type: 'string', default: '10s' },
    },
  };
  const value: Record<string, unknown> = { rules: [{ weight: 5 }, {}] };
  applyDefaults(value, schema);
  assert.deepEqual(value, { rules: [{ weight: 5, kind: 'Service' }, { weight: 1, kind: 'Service' }], timeout: '10s' });
});
