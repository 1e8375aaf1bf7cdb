// reconcile() driven one pass at a time, on in-memory fakes of our own interfaces (the
// ModelCanaries with resourceVersion preconditions, the routes, recorded events, a manual
// clock and counters the test serves). Each test is something that went wrong for users: a
// stale check that promoted a rolled-back model, a skipped step, no data read as zero, an
// invalid edit that stuck, deletes that reverted a promotion, two owners of one route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePass, type PassInput } from '../src/controller/pass.ts';
import { checkModelCanary } from '../src/api/validate.ts';
import type { ModelCanarySpec } from '../src/api/modelcanary.ts';
import type { ModelCanaryStatus } from '../src/api/status.ts';
import { OWNER_ANNOTATION, ORIGINAL_ROUTES_ANNOTATION } from '../src/routing/plan.ts';
import { modelCanary, World } from './helpers/fakes.ts';

type Json = Record<string, any>;

const SECOND = 1000;

/** A world where `name` has started its rollout at 10 %, stable having served traffic. */
async function started(name = 'm', analysis: Json = {}): Promise<World> {
  const w = new World();
  w.metrics.serve(w.clock.now(), 'v1', 1000);
  await w.add(name, analysis);
  await w.settle(name);
  const s = await w.status(name);
  assert.equal(s.phase, 'Progressing', JSON.stringify(s.conditions));
  assert.deepEqual(await w.weights(name), [['v1', 90], ['v2', 10]]);
  return w;
}

/** One healthy interval later, the next check. */
async function healthyCheck(w: World, name = 'm'): Promise<void> {
  w.clock.advance(30 * SECOND);
  w.traffic('v1', 'v2');
  await w.settle(name);
}

test('a check that outlives its deadline writes nothing, and a stale one loses the race for the status', async () => {
  const w = await started();
  w.clock.advance(30 * SECOND);
  w.traffic('v1', 'v2');
  // Prometheus hangs: the check waits on it with healthy data in hand.
  let answer: () => void = () => undefined;
  w.metrics.gate = new Promise((resolve) => (answer = resolve));
  const deadline = new AbortController();
  const cancelled = w.pass('m', deadline.signal);
  const unfenced = w.pass('m'); // the same check from a replica that did not know
  await new Promise((resolve) => setTimeout(resolve, 20));
  deadline.abort(new Error('deadline'));

  // Meanwhile the canary turns bad and a fresh pass rolls it back.
  w.metrics.gate = undefined;
  w.clock.advance(70 * SECOND);
  w.metrics.serve(w.clock.now(), 'v1', 1000, 0);
  w.metrics.serve(w.clock.now(), 'v2', 1000, 400);
  await w.settle('m');
  assert.equal((await w.status('m')).phase, 'RolledBack');

  // The old answers arrive: neither check may undo the rollback.
  answer();
  await assert.rejects(cancelled, /deadline/);
  assert.deepEqual(await unfenced, { requeueAfterMs: 0 }, 'its status write met a newer resourceVersion');
  const s = await w.status('m');
  assert.equal(s.phase, 'RolledBack');
  assert.equal(s.canaryWeight, 0);
  assert.deepEqual(await w.weights('m'), [['v1', 100], ['v2', 0]]);
  assert.ok(!w.events.reasons().includes('Promoted'));
});

test('a slow check does not make the next one due at once: the new step is judged only on what it served', async () => {
  const w = await started('m', { steps: [10, 30, 100] });
  w.clock.advance(30 * SECOND);
  w.traffic('v1', 'v2');
  // Prometheus answers 100 s late: the check is judged then.
  w.metrics.beforeNextAnswer = () => {
    w.clock.advance(100 * SECOND);
  };
  await w.settle('m');
  const advanced = await w.status('m');
  assert.equal(advanced.canaryWeight, 30);
  assert.equal(Date.parse(advanced.lastAnalysis.judgedAt) - Date.parse(advanced.lastAnalysis.time), 100 * SECOND);

  // 60 ms later nothing is due.
  w.clock.advance(60);
  const next = await w.pass('m');
  assert.ok((next.requeueAfterMs ?? 0) > 29 * SECOND, `waits an interval from the judgement: ${JSON.stringify(next)}`);
  assert.equal((await w.status('m')).canaryWeight, 30);

  // Errors served while the slow check was out (still at 10 %) are not the 30 % step's evidence.
  w.metrics.serve(new Date(w.clock.now().getTime() - 50 * SECOND), 'v2', 1000, 400);
  // Metrics are read at whole seconds: the next check reads at the judgement plus the interval.
  w.clock.advance(30 * SECOND - 60);
  w.traffic('v1', 'v2');
  await w.settle('m');
  assert.equal((await w.status('m')).phase, 'Succeeded');
});

test('an empty answer where series existed is "could not measure": the mark is kept and an earlier rollout\'s errors are never fed', async () => {
  const analysis = { interval: '5m', watchInterval: '10s', sequentialTest: { enabled: true } };
  const w = new World();
  // An earlier rollout of v2 failed badly; its counters are still in Prometheus.
  w.metrics.serve(new Date(w.clock.now().getTime() - 3600 * SECOND), 'v2', 2000, 600);
  w.metrics.serve(w.clock.now(), 'v1', 2000, 2);
  await w.add('m', analysis);
  await w.settle('m');
  w.clock.advance(10 * SECOND);
  w.traffic('v1', 'v2', 500, 0);
  await w.settle('m');
  const marked = await w.status('m');
  assert.ok(marked.watchMark !== undefined, 'the first look sets the mark');

  w.metrics.mode = 'empty';
  w.clock.advance(10 * SECOND);
  await w.settle('m');
  assert.deepEqual((await w.status('m')).watchMark, marked.watchMark, 'no data: the mark stays');

  w.metrics.mode = 'ok';
  w.clock.advance(10 * SECOND);
  w.traffic('v1', 'v2', 500, 0);
  await w.settle('m');
  const s = await w.status('m');
  assert.equal(s.phase, 'Progressing', s.message);
  assert.ok(!w.events.reasons().includes('RolledBack'));
});

test('a watch writes nothing when nothing was served since, nor when it leaves the canary far from a rollback; evidence toward one is written', async () => {
  const w = new World();
  w.metrics.serve(w.clock.now(), 'v1', 2000, 2);
  await w.add('m', { interval: '5m', watchInterval: '10s', sequentialTest: { enabled: true } });
  await w.settle('m');
  w.clock.advance(10 * SECOND);
  w.traffic('v1', 'v2', 500, 0);
  await w.settle('m');
  const marked = await w.status('m');
  assert.ok(marked.watchMark !== undefined);
  const writes = w.canaries.statusWrites;
  for (let i = 0; i < 3; i++) {
    w.clock.advance(10 * SECOND);
    const result = await w.settle('m');
    assert.equal(result.requeueAfterMs, 10 * SECOND, 'it looks again at the next watch interval');
  }
  assert.equal(w.canaries.statusWrites, writes, 'no new requests: no status write');
  w.clock.advance(10 * SECOND);
  w.traffic('v1', 'v2', 500, 0);
  await w.settle('m');
  assert.equal(w.canaries.statusWrites, writes, 'healthy requests, far from a rollback: no status write');
  assert.deepEqual((await w.status('m')).watchMark, marked.watchMark, 'the next look reads from the kept mark');
  w.clock.advance(10 * SECOND);
  w.metrics.serve(w.clock.now(), 'v1', 500, 0);
  w.metrics.serve(w.clock.now(), 'v2', 500, 15);
  await w.settle('m');
  const s = await w.status('m');
  assert.ok(w.canaries.statusWrites > writes, 'errors on the canary: written (or rolled back)');
  assert.ok(s.phase === 'RolledBack' || (s.evidence ?? []).some((e: Json) => e.canaryEvents > 0), JSON.stringify(s.evidence));
});

test('an invalid edit holds the rollout where it is, and fixing it resumes from there', async () => {
  const w = await started();
  await healthyCheck(w);
  assert.equal((await w.status('m')).canaryWeight, 30);
  w.canaries.edit('ml-serving', 'm', (o) => (o.spec.analysis.interval = '30'));
  await w.settle('m');
  const held = await w.status('m');
  assert.equal(held.phase, 'Failed');
  assert.match(held.message, /held at 30 % until the spec is fixed: spec\.analysis\.interval: must be a duration/);
  assert.equal(held.conditions.find((c: Json) => c.type === 'Valid').status, 'False');
  assert.deepEqual(await w.weights('m'), [['v1', 70], ['v2', 30]], 'the route is untouched');
  assert.ok(w.events.reasons().includes('InvalidSpec'));

  w.canaries.edit('ml-serving', 'm', (o) => (o.spec.analysis.interval = '30s'));
  await w.settle('m');
  const resumed = await w.status('m');
  assert.equal(resumed.phase, 'Progressing');
  assert.equal(resumed.canaryWeight, 30, 'from where it was, not from the start');
  assert.equal(resumed.conditions.find((c: Json) => c.type === 'Valid').status, 'True');
  await healthyCheck(w);
  assert.equal((await w.status('m')).phase, 'Succeeded');
});

test('delete: mid-rollout restores the route, even with an invalid spec; after the end the route stays; each says what it did', async () => {
  const invalid = await started('m');
  await healthyCheck(invalid);
  invalid.canaries.edit('ml-serving', 'm', (o) => (o.spec.canary.version = 'v1'));
  await invalid.settle('m');
  assert.equal((await invalid.status('m')).phase, 'Failed');
  invalid.canaries.delete('ml-serving', 'm');
  await invalid.settle('m');
  assert.equal(await invalid.canaries.get('ml-serving', 'm'), undefined, 'the finalizer is removed');
  const restored = await invalid.route('m');
  assert.deepEqual(restored.spec.http[0].route, [{ destination: { host: 'm', subset: 'v1' } }]);
  assert.equal(restored.metadata.annotations, undefined, 'no claim or record is left behind');
  assert.match(invalid.events.events.at(-1)?.message ?? '', /deleted mid-rollout at 30 %: VirtualService m is restored as it was before the rollout/);

  const ended = await started('m');
  await healthyCheck(ended);
  await healthyCheck(ended);
  assert.equal((await ended.status('m')).phase, 'Succeeded');
  ended.canaries.delete('ml-serving', 'm');
  await ended.settle('m');
  assert.deepEqual(await ended.weights('m'), [['v1', 0], ['v2', 100]], 'the promoted version keeps its traffic');
  assert.equal((await ended.route('m')).metadata.annotations?.[OWNER_ANNOTATION], undefined, 'the claim is released');
  assert.equal(ended.events.events.at(-1)?.reason, 'RouteKept');
  assert.match(ended.events.events.at(-1)?.message ?? '', /keeps its weights \(canary v2 at 100 %\)/);

  const pending = new World();
  pending.metrics.mode = 'down';
  await pending.add('m');
  await pending.settle('m');
  assert.equal((await pending.status('m')).phase, 'Pending');
  pending.canaries.delete('ml-serving', 'm');
  await pending.settle('m');
  assert.deepEqual(await pending.weights('m'), [['v1', 100]]);
  assert.deepEqual([pending.events.events.at(-1)?.reason, pending.events.events.at(-1)?.message], ['RouteKept', 'deleted before its rollout started: VirtualService m keeps its weights; the claim on it, if any, is released']);
});

test('after a promotion the next rollout starts from the version that serves, and the old one leaves the route', async () => {
  const w = await started();
  await healthyCheck(w);
  await healthyCheck(w);
  assert.equal((await w.status('m')).phase, 'Succeeded');
  w.canaries.edit('ml-serving', 'm', (o) => {
    o.spec.stable = { version: 'v2', destination: { host: 'm', subset: 'v2' } };
    o.spec.canary = { version: 'v3', destination: { host: 'm', subset: 'v3' } };
  });
  await w.settle('m');
  const s = await w.status('m');
  assert.equal(s.phase, 'Progressing', s.message);
  assert.deepEqual([s.stableVersion, s.canaryVersion, s.canaryWeight], ['v2', 'v3', 10]);
  assert.deepEqual(await w.weights('m'), [['v2', 90], ['v3', 10]]);
  const originals = JSON.parse((await w.route('m')).metadata.annotations[ORIGINAL_ROUTES_ANNOTATION]);
  assert.deepEqual(originals[0].route, [{ destination: { host: 'm', subset: 'v2' }, weight: 100 }], 'a delete now restores v2, not v1');
});

test('a new canary mid-rollout sends the old canary\'s traffic back to stable and restarts from the first step', async () => {
  const w = await started();
  await healthyCheck(w);
  assert.deepEqual(await w.weights('m'), [['v1', 70], ['v2', 30]]);
  w.canaries.edit('ml-serving', 'm', (o) => (o.spec.canary = { version: 'v3', destination: { host: 'm', subset: 'v3' } }));
  await w.settle('m');
  const s = await w.status('m');
  assert.deepEqual([s.phase, s.canaryVersion, s.canaryWeight, s.currentStep], ['Progressing', 'v3', 10, 0]);
  assert.deepEqual(await w.weights('m'), [['v1', 90], ['v3', 10]]);
  assert.match(w.events.events.find((e) => e.reason === 'CanaryReplaced')?.message ?? '', /canary changed from v2 \(at 30 %\) to v3/);
});

test('one route, one owner: a second ModelCanary on a claimed route is refused, naming the owner, until the first lets go', async () => {
  const w = await started('first', {});
  await w.add('second', {}, { virtualService: 'first', canary: 'v3' });
  await w.settle('second');
  const refused = await w.status('second');
  assert.equal(refused.phase, 'Pending');
  const routing = refused.conditions.find((c: Json) => c.type === 'RoutingReady');
  assert.equal(routing.reason, 'RouteClaimed');
  assert.match(routing.message, /VirtualService ml-serving\/first is managed by ModelCanary first/);
  assert.deepEqual(await w.weights('first'), [['v1', 90], ['v2', 10]], 'the route is the first one\'s');

  w.canaries.delete('ml-serving', 'first');
  await w.settle('first');
  await w.settle('second');
  assert.equal((await w.status('second')).phase, 'Progressing');
  assert.deepEqual(await w.weights('first'), [['v1', 90], ['v3', 10]]);
  assert.equal((await w.route('first')).metadata.annotations[OWNER_ANNOTATION], 'second');
});

test('a refusal that was fixed is no longer shown while the start waits for something further on', async () => {
  const w = await started('first', {});
  await w.add('second', {}, { virtualService: 'first', canary: 'v3' });
  await w.settle('second');
  const falses = async (): Promise<string[][]> => (await w.status('second')).conditions.filter((c: Json) => c.status === 'False').map((c: Json) => [c.type, c.reason]);
  assert.deepEqual(await falses(), [['RoutingReady', 'RouteClaimed']]);
  w.canaries.delete('ml-serving', 'first');
  await w.settle('first');
  w.metrics.mode = 'down';
  await w.settle('second');
  assert.equal((await w.status('second')).phase, 'Pending');
  assert.deepEqual(await falses(), [['Preflight', 'MetricsUnavailable']], 'the route answers now: its refusal is gone');
  w.metrics.mode = 'ok';
  await w.settle('second');
  assert.equal((await w.status('second')).phase, 'Progressing');
  assert.deepEqual(await falses(), []);
});

test('two ModelCanaries starting on one route at the same moment: exactly one wins the claim, the other waits, nothing is Failed', async () => {
  const w = new World();
  w.metrics.serve(w.clock.now(), 'v1', 1000);
  await w.add('left', {}, { virtualService: 'shared' });
  await w.add('right', {}, { virtualService: 'shared', canary: 'v3' });
  for (let i = 0; i < 4; i++) await Promise.all([w.pass('left'), w.pass('right')]);
  const phases = [(await w.status('left')).phase, (await w.status('right')).phase].sort();
  assert.deepEqual(phases, ['Pending', 'Progressing']);
  const owner = (await w.route('shared')).metadata.annotations[OWNER_ANNOTATION];
  const winner = (await w.status('left')).phase === 'Progressing' ? 'left' : 'right';
  assert.equal(owner, winner);
  const loser = await w.status(winner === 'left' ? 'right' : 'left');
  assert.equal(loser.conditions.find((c: Json) => c.type === 'RoutingReady').reason, 'RouteClaimed');
});

test('no traffic moves before the route, the subsets and the metrics answer; then it starts', async () => {
  const w = new World();
  w.metrics.mode = 'down';
  await w.add('m');
  await w.settle('m');
  let s = await w.status('m');
  assert.equal(s.phase, 'Pending');
  assert.match(s.conditions.find((c: Json) => c.type === 'Preflight').message, /the metrics provider does not answer: cannot reach/);
  assert.deepEqual(await w.weights('m'), [['v1', 100]], 'no traffic moved');

  w.metrics.mode = 'ok';
  await w.settle('m');
  s = await w.status('m');
  assert.match(s.message, /waiting to start: the metrics provider has no requests of stable v1/);

  w.metrics.serve(w.clock.now(), 'v1', 1000);
  w.canaries.edit('ml-serving', 'm', (o) => (o.spec.canary = { version: 'v9', destination: { host: 'm', subset: 'v9' } }));
  await w.settle('m');
  s = await w.status('m');
  assert.match(s.message, /defines subset v9 \(spec\.canary\.destination\.subset\)/);
  assert.deepEqual(await w.weights('m'), [['v1', 100]]);

  w.canaries.edit('ml-serving', 'm', (o) => (o.spec.canary = { version: 'v2', destination: { host: 'm', subset: 'v2' } }));
  await w.settle('m');
  s = await w.status('m');
  assert.equal(s.phase, 'Progressing');
  assert.equal(s.conditions.find((c: Json) => c.type === 'Preflight').status, 'True');
  assert.deepEqual(await w.weights('m'), [['v1', 90], ['v2', 10]]);
});

test('a metrics provider that does not answer in time holds the start with a condition, never a failed pass without a word', async () => {
  const w = new World();
  const silent = { counts: () => new Promise<never>(() => undefined), totals: (_s: unknown, _a: unknown, signal?: AbortSignal) => new Promise<never>((_ok, fail) => signal?.addEventListener('abort', () => { fail(signal.reason as Error); })), value: () => new Promise<never>(() => undefined) };
  w.deps.providerFor = () => Promise.resolve(silent);
  w.deps.metricsBudgetMs = 50;
  await w.add('m');
  await w.settle('m');
  const s = await w.status('m');
  assert.equal(s.phase, 'Pending');
  assert.match(s.conditions.find((c: Json) => c.type === 'Preflight').message, /^the metrics provider did not answer within 50 ms \(.*\); the start is tried again$/);
  assert.deepEqual(await w.weights('m'), [['v1', 100]], 'no traffic moved');
});

test('a crash between the status write and the route write: the next pass sets the route, and no step is skipped', async () => {
  const w = await started();
  w.clock.advance(30 * SECOND);
  w.traffic('v1', 'v2');
  const replace = w.routes.replace.bind(w.routes);
  w.routes.replace = () => Promise.reject(new Error('killed'));
  await assert.rejects(w.pass('m'), /killed/);
  w.routes.replace = replace;
  assert.equal((await w.status('m')).canaryWeight, 30, 'the decision was committed');
  assert.deepEqual(await w.weights('m'), [['v1', 90], ['v2', 10]], 'the route was not');

  w.clock.advance(5 * SECOND);
  await w.settle('m');
  assert.deepEqual(await w.weights('m'), [['v1', 70], ['v2', 30]]);
  const s = await w.status('m');
  assert.equal(s.stepStartedAt, w.clock.now().toISOString(), 'the 30 % step starts when the route took it');
  assert.match(w.events.events.find((e) => e.reason === 'RouteDrifted')?.message ?? '', /held 10 % on the canary, not 30 %/);
  w.clock.advance(20 * SECOND);
  assert.ok(((await w.pass('m')).requeueAfterMs ?? 0) > 0, 'the 30 % step is judged a full interval after it began');
  assert.equal((await w.status('m')).canaryWeight, 30);
});

test('a rolled-back canary is retried, same versions, by setting the retry annotation', async () => {
  const w = await started();
  w.clock.advance(30 * SECOND);
  w.traffic('v1', 'v2', 1000, 400);
  await w.settle('m');
  assert.equal((await w.status('m')).phase, 'RolledBack');
  assert.equal((await w.pass('m')).requeueAfterMs, undefined, 'a rollback is final until asked');
  w.canaries.edit('ml-serving', 'm', (o) => (o.metadata.annotations = { 'modelcanary.io/retry': '2026-11-26T12:05:00Z' }));
  await w.settle('m');
  const s = await w.status('m');
  assert.deepEqual([s.phase, s.canaryWeight, s.retry], ['Progressing', 10, '2026-11-26T12:05:00Z']);
  assert.ok(w.events.reasons().includes('RolloutRetried'));
  await healthyCheck(w);
  await healthyCheck(w);
  assert.equal((await w.status('m')).phase, 'Succeeded');
});

test('an ended rollout keeps its outcome and the last check\'s numbers, not the machinery of a running one', async () => {
  const ended = async (w: World): Promise<Json> => {
    const s = await w.status('m');
    for (const running of ['evidence', 'watchMark', 'carriedCounts', 'passedChecks', 'failedChecks', 'inconclusiveChecks', 'gate', 'window', 'handled']) assert.equal(s[running], undefined, running);
    assert.deepEqual(s.conditions.map((c: Json) => c.type).sort(), ['Progressing', 'Promoted', 'RoutingReady', 'Valid']);
    assert.ok(s.lastAnalysis.metrics.length > 0 && s.lastAnalysis.metrics.every((m: Json) => typeof m.canary === 'number' && typeof m.stable === 'number'), JSON.stringify(s.lastAnalysis));
    return s;
  };
  const bad = await started();
  assert.ok((await bad.status('m')).evidence !== undefined, 'a running rollout keeps its evidence');
  bad.clock.advance(30 * SECOND);
  bad.traffic('v1', 'v2', 1000, 400);
  await bad.settle('m');
  const rolledBack = await ended(bad);
  assert.equal(rolledBack.phase, 'RolledBack');
  const progressing = rolledBack.conditions.find((c: Json) => c.type === 'Progressing');
  assert.match(progressing.message, /^v2 rolled back to v1 at 10 %: error-rate failed; status.message says why$/);
  assert.ok(rolledBack.message.length > progressing.message.length, 'the whole reason stays in status.message');
  assert.equal((await bad.pass('m')).requeueAfterMs, undefined, 'nothing left to do until a new version or a retry');

  const good = await started();
  await healthyCheck(good);
  await healthyCheck(good);
  assert.equal((await ended(good)).phase, 'Succeeded');
});

test('a bound stable breaks too does not fail the canary: a Warning event once and a condition while it lasts', async () => {
  const w = new World();
  w.metrics.serve(w.clock.now(), 'v1', 4000, 160);
  await w.add('m', { metrics: [{ name: 'error-rate', type: 'errorRate', max: 0.02 }] });
  await w.settle('m');
  for (let i = 0; i < 2; i++) {
    w.clock.advance(30 * SECOND);
    w.metrics.serve(w.clock.now(), 'v1', 4000, 160);
    w.metrics.serve(w.clock.now(), 'v2', 4000, 150);
    await w.settle('m');
  }
  const s = await w.status('m');
  assert.notEqual(s.phase, 'RolledBack', s.message);
  assert.ok(s.canaryWeight >= 30, `the canary moved on: ${s.canaryWeight}`);
  const condition = s.conditions.find((c: Json) => c.type === 'StableMeetsBounds');
  assert.equal(condition?.status, 'False');
  assert.match(condition.message, /error-rate: stable breaks this bound too/);
  assert.equal(w.events.reasons().filter((r) => r === 'StableBreaksBound').length, 1, 'said once, not at every check');
  const metric = s.lastAnalysis.metrics[0];
  assert.match(metric.reason, / at 95 %/, 'the confidence bounds behind the verdict are in its reason');
});

// ── The choice itself, as a table ─────────────────────────────────────────────────────

function spec(edit: (s: Json) => void = () => undefined): ModelCanarySpec {
  const manifest = modelCanary('m');
  edit(manifest.spec);
  const checked = checkModelCanary(manifest);
  assert.ok(checked.ok);
  return checked.value.spec;
}

const T0 = Date.parse('2026-11-26T12:00:00Z');
const iso = (offsetS: number): string => new Date(T0 + offsetS * SECOND).toISOString();
const running: ModelCanaryStatus = {
  phase: 'Progressing',
  stableVersion: 'v1',
  canaryVersion: 'v2',
  canaryWeight: 30,
  lastAnalysis: { time: iso(0), judgedAt: iso(100), decision: 'advance', reason: 'x', metrics: [] },
  stepStartedAt: iso(100),
};

test('choosePass: one row per situation', () => {
  const base: PassInput = { now: new Date(T0 + 110 * SECOND), generation: 2, deleting: false, hasFinalizer: true, retry: undefined, requests: {}, spec: { ok: true, value: spec() }, status: running, route: { ok: true, found: { stable: 70, canary: 30 }, inSync: true } };
  const cases: { name: string; input: Partial<PassInput>; want: Json }[] = [
    { name: 'deleted mid-rollout: restore', input: { deleting: true }, want: { kind: 'finalize', mode: 'restore' } },
    { name: 'deleted after the end: keep', input: { deleting: true, status: { ...running, phase: 'Succeeded' } }, want: { kind: 'finalize', mode: 'keep' } },
    { name: 'deleted, finalizer gone: nothing', input: { deleting: true, hasFinalizer: false }, want: { kind: 'forget' } },
    { name: 'invalid mid-rollout: held as Failed', input: { spec: { ok: false, problems: 'p' } }, want: { kind: 'holdInvalid', problems: 'p', phase: 'Failed' } },
    { name: 'invalid before start: Pending', input: { spec: { ok: false, problems: 'p' }, status: {} }, want: { kind: 'holdInvalid', problems: 'p', phase: 'Pending' } },
    { name: 'invalid after the end: the phase stays', input: { spec: { ok: false, problems: 'p' }, status: { ...running, phase: 'Succeeded' } }, want: { kind: 'holdInvalid', problems: 'p', phase: 'Succeeded' } },
    { name: 'no finalizer yet', input: { hasFinalizer: false }, want: { kind: 'addFinalizer' } },
    { name: 'never started', input: { status: {} }, want: { kind: 'start', reason: 'new' } },
    { name: 'new canary mid-rollout', input: { spec: { ok: true, value: spec((s) => (s.canary = { version: 'v3', destination: { host: 'm', subset: 'v3' } })) } }, want: { kind: 'start', reason: 'canaryChanged' } },
    { name: 'retry asked after a rollback', input: { retry: 'a', status: { ...running, phase: 'RolledBack' } }, want: { kind: 'start', reason: 'retry' } },
    { name: 'retry already acted on', input: { retry: 'a', status: { ...running, phase: 'RolledBack', retry: 'a' } }, want: { kind: 'done' } },
    { name: 'route claimed by another', input: { route: { ok: false, problem: 'claimed', claimedBy: 'x' } }, want: { kind: 'refuseRoute', problem: 'claimed', claimedBy: 'x', phase: 'Failed' } },
    { name: 'held, now fixed', input: { status: { ...running, phase: 'Failed' } }, want: { kind: 'recover', phase: 'Progressing' } },
    { name: 'route differs from status', input: { route: { ok: true, found: { stable: 90, canary: 10 }, inSync: false } }, want: { kind: 'converge' } },
    { name: 'ended, route in place', input: { status: { ...running, phase: 'Succeeded' } }, want: { kind: 'done' } },
    { name: 'suspended', input: { spec: { ok: true, value: spec((s) => (s.suspend = true)) } }, want: { kind: 'pause' } },
    { name: 'paused, unsuspended', input: { status: { ...running, phase: 'Paused' } }, want: { kind: 'resume' } },
    { name: 'check not due: 30 s after the judgement, not the window', input: {}, want: { kind: 'wait', ms: 20 * SECOND } },
    { name: 'check due: the window starts when the step did', input: { now: new Date(T0 + 131 * SECOND) }, want: { kind: 'check', windowStart: new Date(T0 + 100 * SECOND) } },
    {
      name: 'on a 10 s grid, a step that began at 103 s is first checked at 140 s: its window starts on the grid at 110 s and is a whole interval',
      input: { readGridMs: 10 * SECOND, now: new Date(T0 + 134 * SECOND), status: { ...running, lastAnalysis: { time: iso(0), judgedAt: iso(103), decision: 'advance', reason: 'x', metrics: [] }, stepStartedAt: iso(103) } },
      want: { kind: 'wait', ms: 6 * SECOND },
    },
    {
      name: 'on a 10 s grid, the next checks of a step come an interval after the last judgement, as on any grid',
      input: { readGridMs: 10 * SECOND, now: new Date(T0 + 161 * SECOND), status: { ...running, lastAnalysis: { time: iso(130), judgedAt: iso(131), decision: 'hold', reason: 'x', metrics: [] }, stepStartedAt: iso(103) } },
      want: { kind: 'check', windowStart: new Date(T0 + 130 * SECOND) },
    },
    { name: 'an abort asked', input: { requests: { abort: 'x', promote: 'y' } }, want: { kind: 'act', request: 'abort', value: 'x' } },
    { name: 'a promote already acted on is not asked again', input: { requests: { promote: 'y' }, status: { ...running, handled: { promote: 'y' } } }, want: { kind: 'wait', ms: 20 * SECOND } },
    { name: 'a request after the end is answered (ignored, with an event)', input: { requests: { approve: 'z' }, status: { ...running, phase: 'Succeeded' } }, want: { kind: 'act', request: 'approve', value: 'z' } },
    { name: 'a webhook gate never asked: ask now', input: { status: { ...running, gate: { name: 'sre', weight: 100, step: 2, approval: 'webhook' as const, canaryVersion: 'v2', since: iso(100) } } }, want: { kind: 'askGate' } },
    { name: 'a webhook gate asked 10 s ago: ask again at the interval', input: { status: { ...running, gate: { ...{ name: 'sre', weight: 100, step: 2, approval: 'webhook' as const, canaryVersion: 'v2', since: iso(100) }, askedAt: iso(100) } } }, want: { kind: 'wait', ms: 20 * SECOND } },
    { name: 'a gate past its deadline', input: { status: { ...running, gate: { ...{ name: 'sre', weight: 100, step: 2, approval: 'webhook' as const, canaryVersion: 'v2', since: iso(100) }, deadline: iso(105) } } }, want: { kind: 'gateTimeout' } },
  ];
  for (const c of cases) assert.deepEqual(choosePass({ ...base, ...c.input }), c.want, c.name);
});
