// `modelcanary status` and `modelcanary list`: what a person sees, first from the pure view on
// hand-built objects (one table of rollouts, each rendered at several widths, with and without
// colour), then from the command against the sandbox, with real kubectl writing the status.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { checkModelCanary } from '../src/api/validate.ts';
import type { ModelCanaryStatus } from '../src/api/status.ts';
import type { Io } from '../src/cli/io.ts';
import { renderList, renderStatus, waitingFor, type StatusView } from '../src/cli/status-view.ts';
import { runList, runStatus } from '../src/cli/status.ts';
import { istioManifest } from './helpers/manifests.ts';
import { eventually, sandboxHarness, type SandboxHarness } from './helpers/sandbox.ts';

const NOW = new Date('2026-05-04T10:00:00Z');
const ago = (seconds: number): string => new Date(NOW.getTime() - seconds * 1000).toISOString();
const later = (seconds: number): string => new Date(NOW.getTime() + seconds * 1000).toISOString();
const ESC = '\x1b';
const ANSI = new RegExp(`${ESC}\\[`);
const SGR = new RegExp(`${ESC}\\[[0-9;]*[mKJ]`, 'g');
const columns = (line: string): number => Array.from(line.replace(SGR, '')).length;

function manifest(status?: Record<string, unknown>): Record<string, any> {
  const m = istioManifest();
  m.metadata = { ...m.metadata, generation: 1, creationTimestamp: ago(3600), uid: 'u-1' };
  m.spec.analysis.interval = '30s';
  m.spec.analysis.steps = [10, 30, 100];
  if (status !== undefined) m.status = status;
  return m;
}

function viewOf(object: Record<string, any>, extra: Partial<StatusView> = {}): StatusView {
  const checked = checkModelCanary(object);
  assert.ok(checked.ok, JSON.stringify(checked.ok ? '' : checked.problems));
  return { object, spec: checked.value.spec, events: [], ...extra };
}

function statusOf(object: Record<string, any>): ModelCanaryStatus {
  const checked = checkModelCanary(object);
  assert.ok(checked.ok);
  return checked.value.status ?? {};
}

const condition = (type: string, status: 'True' | 'False', reason: string, message: string): Record<string, string> => ({ type, status, reason, message, lastTransitionTime: ago(600) });

const PROGRESSING = {
  phase: 'Progressing',
  observedGeneration: 1,
  stableVersion: 'v1',
  canaryVersion: 'v2',
  canaryWeight: 30,
  currentStep: 1,
  stepStartedAt: ago(120),
  message: 'canary v2 at 30 %: 0 of 1 passing checks at this step',
  lastAnalysis: {
    time: ago(15),
    judgedAt: ago(12),
    decision: 'hold',
    reason: 'ttft inconclusive: no data for the canary; the step holds until a check can judge it',
    metrics: [
      { name: 'error-rate', verdict: 'pass', stable: 0.001, canary: 0.0012, reason: 'at most 0.9 % at 95 %' },
      { name: 'p99', verdict: 'pass', stable: 210, canary: 340, reason: 'at most 420 ms' },
      { name: 'ttft', verdict: 'inconclusive', stable: null, reason: 'no data' },
    ],
  },
  conditions: [condition('Valid', 'True', 'SpecAccepted', 'the spec is valid'), condition('MetricsAvailable', 'False', 'NoEvidence', 'ttft: the last 10 checks had no data for the canary')],
};

const EVENTS: StatusView['events'] = [
  { type: 'Normal', reason: 'RolloutStarted', message: 'canary v2 at 10 %, stable v1', time: ago(1500), count: 1 },
  { type: 'Normal', reason: 'StepAdvanced', message: 'canary v2 passed its step and now takes 30 % of the traffic', time: ago(120), count: 1 },
  { type: 'Warning', reason: 'WebhookFailed', message: 'webhook load (rollout): answered 503 \x1b[2J\x1b[31mafter 2 retries', time: ago(30), count: 3 },
];

interface Case {
  name: string;
  view: StatusView;
  shows: (string | RegExp)[];
  hides?: string[];
  phaseColour: string;
}

const REFUSAL = 'http route "predict" of VirtualService fraud-detector sends traffic to host fraud-detector-legacy, which is neither stable nor canary';

const cases: Case[] = [
  {
    name: 'a Progressing rollout at step 2/3 with its last check, the route behind the status',
    view: viewOf(manifest(PROGRESSING), { routeWeight: { canary: 10, stable: 90 }, events: EVENTS }),
    shows: [
      'Phase:        Progressing',
      /Step: +2\/3 \[######--------------\] 30 % canary/,
      'Route:        10 % canary — behind the status (30 %)',
      /Last check: +12 s ago: hold/,
      /error-rate +0\.10 % +0\.12 % +≤ 1\.00 % +pass/,
      /p99 +210 ms +340 ms +p99 ≤ 500 ms +pass/,
      /ttft +- +- +≤ 2\.5 +inconclusive/,
      'Waiting for:  next check in 18 s',
      /MetricsAvailable +NoEvidence +ttft: the last 10 checks/,
      /! +30 s \(x3\) +WebhookFailed/,
      /2 min +StepAdvanced/,
    ],
    hides: ['\x1b[2J'],
    phaseColour: '\x1b[36mProgressing',
  },
  {
    name: 'one waiting at a manual gate',
    view: viewOf(
      manifest({
        ...PROGRESSING,
        gate: { name: 'prod', weight: 100, step: 2, approval: 'manual', canaryVersion: 'v2', since: ago(720), deadline: later(2880) },
        conditions: [condition('GateOpen', 'False', 'AwaitingApproval', 'gate prod waits for a person before 100 %: kubectl modelcanary approve')],
      }),
      { routeWeight: { canary: 30, stable: 70 } },
    ),
    shows: [
      'Route:        30 % canary\n',
      /Waiting for: +approval of gate prod before 100 % \(waiting 12 min; times out at [^,]+, in 48 min\) — run: kubectl modelcanary approve fraud-detector -n ml-serving/,
      /GateOpen +AwaitingApproval/,
    ],
    hides: ['behind'],
    phaseColour: '\x1b[36mProgressing',
  },
  {
    name: 'one held by a rollout window before it starts',
    view: viewOf(
      manifest({
        phase: 'Pending',
        window: { since: ago(60), opensAt: later(3 * 3600 + 600), reason: 'outside Mon-Fri 09:00-17:00 Europe/Berlin' },
        conditions: [condition('InWindow', 'False', 'OutsideWindow', 'no traffic moves outside the rollout windows: outside Mon-Fri 09:00-17:00 Europe/Berlin')],
      }),
      { routeWeight: { problem: 'VirtualService ml-serving/fraud-detector does not exist (looked for networking.istio.io/v1, networking.istio.io/v1beta1)' } },
    ),
    shows: [/Step: +0\/3 \[-{20}\] 0 % canary/, /Waiting for: +the rollout window: opens at .+ \(in 3 h 10 min\) — outside Mon-Fri/, 'Route:        cannot tell: VirtualService ml-serving/fraud-detector does not exist', 'Last check:   none yet'],
    phaseColour: '\x1b[33mPending',
  },
  {
    name: 'one Waiting for a slot under --max-concurrent-rollouts',
    view: viewOf(
      manifest({
        phase: 'Waiting',
        message: '3 rollouts are in progress, the most this controller runs at once (--max-concurrent-rollouts 3); this one is number 2 in line',
        conditions: [condition('Progressing', 'False', 'WaitingForSlot', '3 rollouts are in progress')],
      }),
      { routeWeight: { canary: 0, stable: 100 } },
    ),
    shows: ['Phase:        Waiting', /Waiting for: +a free slot: .*--max-concurrent-rollouts/, /number 2 in line/, 'Events:       none'],
    phaseColour: '\x1b[33mWaiting',
  },
  {
    name: 'one whose route is refused before the start: the refusal said once, then referred to',
    view: viewOf(
      manifest({
        phase: 'Pending',
        message: `waiting to start: ${REFUSAL}`,
        conditions: [condition('RoutingReady', 'False', 'RouteRefused', REFUSAL)],
      }),
      { routeWeight: { problem: REFUSAL } },
    ),
    shows: [`Message:      waiting to start: ${REFUSAL}`, 'Route:        cannot tell: the problem above', 'Waiting for:  the problem above to be fixed', /RoutingReady +RouteRefused +\(as above\)/],
    phaseColour: '\x1b[33mPending',
  },
  {
    name: 'a RolledBack one',
    view: viewOf(
      manifest({
        ...PROGRESSING,
        phase: 'RolledBack',
        canaryWeight: 0,
        message: 'canary v2 was rolled back: error-rate failed',
        lastAnalysis: {
          time: ago(65),
          decision: 'rollback',
          reason: 'error-rate failed: canary 4.2 % > 1 % with 95 % confidence (3 of 3 failed checks)',
          metrics: [{ name: 'error-rate', verdict: 'fail', stable: 0.001, canary: 0.042, reason: 'at least 3.1 %' }],
        },
        conditions: [condition('Progressing', 'False', 'RolledBack', 'error-rate failed'), condition('Promoted', 'False', 'RolledBack', 'error-rate failed')],
      }),
      { routeWeight: { canary: 0, stable: 100 }, events: [{ type: 'Warning', reason: 'RolledBack', message: 'all traffic is on stable v1', time: ago(60), count: 1 }] },
    ),
    shows: ['Phase:        RolledBack', /Step: +2\/3 \[-{20}\] 0 % canary/, /Last check: +1 min 5 s ago: rollback/, /error-rate +0\.10 % +4\.20 % +≤ 1\.00 % +fail/, /! +1 min +RolledBack/],
    hides: ['Waiting for:'],
    phaseColour: '\x1b[31mRolledBack',
  },
];

describe('renderStatus', () => {
  for (const c of cases) {
    test(`${c.name}: shows what a person needs, at every width`, () => {
      const wide = renderStatus(c.view, { now: NOW, color: false, width: Infinity });
      for (const s of c.shows) {
        if (typeof s === 'string') assert.ok(wide.includes(s), `missing ${JSON.stringify(s)} in\n${wide}`);
        else assert.match(wide, s);
      }
      for (const s of c.hides ?? []) assert.ok(!wide.includes(s), `unexpected ${JSON.stringify(s)} in\n${wide}`);
      assert.match(wide, /^Name: +fraud-detector\nNamespace: +ml-serving\n/);
      assert.match(wide, /Versions: +v1 \(stable\) → v2 \(canary\)/);
      for (const width of [Infinity, 120, 80, 60, 40]) {
        for (const color of [false, true]) {
          const text = renderStatus(c.view, { now: NOW, color, width });
          assert.doesNotMatch(text, /undefined|null|NaN|\[object/, text);
          if (!color) assert.doesNotMatch(text, ANSI, `ANSI codes without colour at width ${width}`);
          const over = text.split('\n').filter((line) => columns(line) > width);
          assert.deepEqual(over, [], `lines wider than ${width}`);
        }
      }
      assert.ok(renderStatus(c.view, { now: NOW, color: true, width: 100 }).includes(c.phaseColour), 'the phase is coloured');
    });
  }

  test('the bar is drawn in blocks with colour and in ASCII without', () => {
    const view = cases[0]?.view;
    assert.ok(view !== undefined);
    assert.match(renderStatus(view, { now: NOW, color: true, width: 100 }), /\[██████░{14}\]/);
    assert.match(renderStatus(view, { now: NOW, color: false, width: 100 }), /\[#{6}-{14}\]/);
  });

  test('a narrow terminal wraps the long columns instead of losing them', () => {
    const view = cases[0]?.view;
    assert.ok(view !== undefined);
    const text = renderStatus(view, { now: NOW, color: false, width: 60 });
    assert.match(text, /MetricsAvailable +NoEvidence/);
    assert.match(text, /ttft: the last 10/);
    assert.match(text, /\n {20,}no data for the canary\n/, 'the message continues under its column');
  });

  test('without ages the text does not change as time passes, only as the rollout does', () => {
    for (const c of cases) {
      const at = (seconds: number, ages: boolean): string => renderStatus(c.view, { now: new Date(NOW.getTime() + seconds * 1000), color: false, width: Infinity, ages });
      assert.equal(at(0, false), at(7, false), c.name);
      assert.equal(at(0, false), at(2 * 86_400, false), c.name);
      if ((c.view.object.status as { lastAnalysis?: unknown }).lastAnalysis !== undefined) assert.notEqual(at(0, true), at(7, true), `${c.name}: ages pass`);
    }
  });

  test('an invalid spec, no status, and a status that does not parse are said, not crashed on', () => {
    const invalid = manifest(PROGRESSING);
    invalid.spec.analysis.steps = [30, 10];
    const none = manifest();
    const odd = manifest({ phase: 'Exploded' });
    for (const [object, expected] of [
      [invalid, /Spec: +invalid: see the Valid condition; nothing moves until it is fixed/],
      [none, /Phase: +none yet[\s\S]*Waiting for: +the controller to pick it up/],
      [odd, /Status: +unreadable: status\.phase/],
    ] as const) {
      const text = renderStatus({ object, events: [] }, { now: NOW, color: false, width: 80 });
      assert.match(text, expected);
      assert.doesNotMatch(text, /undefined|null|NaN/);
    }
    const said = renderStatus({ object: invalid, specProblems: 'spec.analysis.steps[1]: must be greater than the step before it (30)', events: [] }, { now: NOW, color: false, width: Infinity });
    assert.match(said, /Spec: +invalid: spec\.analysis\.steps\[1\]: must be greater than the step before it \(30\); nothing moves until it is fixed/);
  });
});

describe('waitingFor', () => {
  const base = manifest(PROGRESSING);
  const spec = viewOf(base).spec;
  const target = { name: 'fraud-detector', namespace: 'ml-serving' };
  const waitCases: { name: string; status: Record<string, unknown>; expected: RegExp | undefined }[] = [
    { name: 'Progressing: an interval after the last judgement', status: PROGRESSING, expected: /^next check in 18 s$/ },
    { name: 'Progressing: an interval after the step started, when that is later', status: { ...PROGRESSING, stepStartedAt: ago(5) }, expected: /^next check in 25 s$/ },
    { name: 'Progressing: past due', status: { ...PROGRESSING, lastAnalysis: { ...PROGRESSING.lastAnalysis, judgedAt: ago(95) }, stepStartedAt: ago(100) }, expected: /^a check is due now$/ },
    { name: 'Waiting: a slot', status: { phase: 'Waiting' }, expected: /^a free slot: .*--max-concurrent-rollouts/ },
    {
      name: 'a manual gate with a deadline',
      status: { ...PROGRESSING, gate: { name: 'prod', weight: 100, step: 2, approval: 'manual', canaryVersion: 'v2', since: ago(60), deadline: later(600) } },
      expected: /^approval of gate prod before 100 % \(waiting 1 min; times out at .+, in 10 min\) — run: kubectl modelcanary approve fraud-detector -n ml-serving$/,
    },
    {
      name: 'a manual gate without a deadline',
      status: { ...PROGRESSING, gate: { name: 'prod', weight: 100, step: 2, approval: 'manual', canaryVersion: 'v2', since: ago(7200) } },
      expected: /^approval of gate prod before 100 % \(waiting 2 h\) — run: kubectl modelcanary approve fraud-detector -n ml-serving$/,
    },
    {
      name: "a webhook gate, with its last answer",
      status: { ...PROGRESSING, gate: { name: 'smoke', weight: 30, step: 1, approval: 'webhook', canaryVersion: 'v2', since: ago(60), askedAt: ago(20), answer: '503: not ready' } },
      expected: /^gate smoke's webhook before 30 % \(last answer: 503: not ready, 20 s ago\) \(waiting 1 min\)$/,
    },
    { name: 'a webhook gate not asked yet', status: { phase: 'Pending', gate: { name: 'smoke', weight: 10, step: 0, approval: 'webhook', canaryVersion: 'v2', since: ago(1) } }, expected: /^gate smoke's webhook before 10 % \(not asked yet\)/ },
    { name: 'a window that opens', status: { phase: 'Pending', window: { since: ago(10), opensAt: later(3 * 3600 + 600), reason: 'weekdays only' } }, expected: /^the rollout window: opens at .+ \(in 3 h 10 min\) — weekdays only$/ },
    { name: 'a window that never opens', status: { phase: 'Pending', window: { since: ago(10), reason: 'no window matches' } }, expected: /^the rollout window: no window opens within a year — no window matches$/ },
    { name: 'Paused', status: { ...PROGRESSING, phase: 'Paused' }, expected: /^spec\.suspend — run: kubectl modelcanary resume fraud-detector -n ml-serving$/ },
    { name: 'Pending on the preflight', status: { phase: 'Pending', conditions: [condition('Valid', 'True', 'SpecAccepted', 'ok'), condition('Preflight', 'False', 'SubsetMissing', 'no DestinationRule defines subset v2')] }, expected: /^no DestinationRule defines subset v2$/ },
    { name: 'Failed', status: { ...PROGRESSING, phase: 'Failed', conditions: [condition('RoutingReady', 'False', 'RouteClaimed', 'VirtualService x is managed by ModelCanary other')] }, expected: /^VirtualService x is managed by ModelCanary other$/ },
    { name: 'no status yet', status: {}, expected: /^the controller to pick it up/ },
    { name: 'Succeeded', status: { ...PROGRESSING, phase: 'Succeeded', canaryWeight: 100 }, expected: undefined },
    { name: 'RolledBack', status: { ...PROGRESSING, phase: 'RolledBack', canaryWeight: 0 }, expected: undefined },
  ];
  for (const c of waitCases) {
    test(c.name, () => {
      const line = waitingFor(spec, statusOf(manifest(c.status)), NOW, target);
      if (c.expected === undefined) assert.equal(line, undefined);
      else assert.match(line ?? '(undefined)', c.expected);
    });
  }
});

describe('renderList', () => {
  const objects = [manifest(PROGRESSING), { ...manifest({ phase: 'Pending' }), metadata: { name: 'sentiment', namespace: 'team-b', creationTimestamp: ago(90) } }];
  test('a table like kubectl get, with NAMESPACE under -A', () => {
    const text = renderList(objects, { now: NOW, color: false, allNamespaces: true });
    const [header, first, second] = text.split('\n');
    assert.match(header ?? '', /^NAMESPACE +NAME +MODEL +STABLE +CANARY +STEP +WEIGHT +PHASE +LAST CHECK +AGE$/);
    assert.match(first ?? '', /^ml-serving +fraud-detector +fraud-detector +v1 +v2 +2\/3 +30 % +Progressing +hold +1 h$/);
    assert.match(second ?? '', /^team-b +sentiment +fraud-detector +v1 +v2 +0\/3 +0 % +Pending +- +1 min 30 s$/);
    assert.doesNotMatch(text, ANSI);
    assert.doesNotMatch(text, /undefined|null|NaN/);
  });
  test('without -A there is no NAMESPACE column; with colour the phase is coloured', () => {
    const text = renderList(objects, { now: NOW, color: true, allNamespaces: false, namespace: 'ml-serving' });
    assert.match(text, /^NAME +MODEL/);
    assert.ok(text.includes('\x1b[36mProgressing'));
  });
  test('an empty namespace says so', () => {
    assert.equal(renderList([], { now: NOW, color: false, allNamespaces: false, namespace: 'ml-serving' }), 'No ModelCanaries found in namespace ml-serving.\n');
    assert.equal(renderList([], { now: NOW, color: false, allNamespaces: true }), 'No ModelCanaries found.\n');
  });
});

// ── Against the sandbox ─────────────────────────────────────────────────────────────────

/** The promise's value, or 'still running' after `ms`; the timer does not outlive it. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'still running'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<'still running'>((resolve) => (timer = setTimeout(resolve, ms, 'still running')))]);
  } finally {
    clearTimeout(timer);
  }
}

function capture(): { io: Io; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (err += t) }, stdin: (async function* () {})(), cwd: tmpdir() },
    out: () => out,
    err: () => err,
  };
}

describe('modelcanary status and list against the sandbox', () => {
  let cluster: SandboxHarness;
  // The kubeconfig is passed as a flag: these tests run in-process, and the environment is the test runner's.
  const env = {};
  let ns: string[];

  async function writeStatus(status: Record<string, unknown>): Promise<void> {
    const result = await cluster.kubectl(['patch', 'mcan', 'fraud-detector', '-n', 'ml-serving', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    assert.equal(result.code, 0, result.stderr);
  }

  async function recordEvent(type: string, reason: string, message: string): Promise<void> {
    const object = (await cluster.kubeConfig.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ group: 'modelcanary.io', version: 'v1alpha1', plural: 'modelcanaries', namespace: 'ml-serving', name: 'fraud-detector' })) as {
      metadata: { uid: string };
    };
    const now = new Date();
    await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespacedEvent({
      namespace: 'ml-serving',
      body: {
        metadata: { generateName: 'fraud-detector.', namespace: 'ml-serving' },
        involvedObject: { apiVersion: 'modelcanary.io/v1alpha1', kind: 'ModelCanary', name: 'fraud-detector', namespace: 'ml-serving', uid: object.metadata.uid },
        type,
        reason,
        message,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        source: { component: 'modelcanary' },
      },
    });
  }

  const progressing = (weight: number, step: number): Record<string, unknown> => {
    const now = new Date().toISOString();
    return {
      phase: 'Progressing',
      observedGeneration: 1,
      stableVersion: 'v1',
      canaryVersion: 'v2',
      canaryWeight: weight,
      currentStep: step,
      stepStartedAt: now,
      message: `canary v2 at ${weight} %`,
      lastAnalysis: {
        time: now,
        judgedAt: now,
        decision: 'hold',
        reason: 'error-rate inconclusive: 80 canary requests, fewer than minRequests (100)',
        metrics: [
          { name: 'error-rate', verdict: 'inconclusive', stable: 0.001, canary: 0.0012, reason: 'too few requests' },
          { name: 'p99', verdict: 'pass', stable: 210, canary: 232, reason: 'within' },
        ],
      },
      conditions: [{ type: 'Valid', status: 'True', reason: 'SpecAccepted', message: 'the spec is valid', lastTransitionTime: now }],
    };
  };

  before(async () => {
    cluster = await sandboxHarness({ namespaces: ['ml-serving'] });
    ns = ['--kubeconfig', cluster.kubeconfigFile, '-n', 'ml-serving'];
    const applied = await cluster.kubectl(['apply', '-f', 'examples/fraud-detector-istio.yaml']);
    assert.equal(applied.code, 0, applied.stderr);
    await writeStatus(progressing(10, 0));
    await recordEvent('Normal', 'RolloutStarted', 'canary v2 at 10 %, stable v1');
  });
  after(async () => {
    await cluster.stop();
  });

  test('status NAME shows the rollout, the route as found and the events, without ANSI when piped', async () => {
    const run = capture();
    assert.equal(await runStatus(['fraud-detector', ...ns], run.io, env), 0, run.err());
    const out = run.out();
    assert.match(out, /Phase: +Progressing/);
    assert.match(out, /Step: +1\/3 \[##-{18}\] 10 % canary/);
    assert.match(out, /Route: +0 % canary — behind the status \(10 %\)/, 'the example VirtualService still sends everything to v1');
    assert.match(out, /error-rate +0\.10 % +0\.12 % +≤ 1\.00 % +inconclusive/);
    assert.match(out, /p99 +210 ms +232 ms +p99 ≤ 250 ms, ≤ 1\.25× stable +pass/);
    assert.match(out, /Waiting for: +next check in (2\d|30) s/);
    assert.match(out, /RolloutStarted +canary v2 at 10 %, stable v1/);
    assert.doesNotMatch(out, ANSI);
    assert.doesNotMatch(out, /undefined|null|NaN/);
    assert.equal(run.err(), '');
  });

  test('-o json and -o yaml: the object as the API server returned it, plus the route and what it waits for', async () => {
    for (const format of ['json', 'yaml']) {
      const run = capture();
      assert.equal(await runStatus(['fraud-detector', ...ns, '-o', format], run.io, env), 0, run.err());
      const doc = (format === 'json' ? JSON.parse(run.out()) : parseYaml(run.out())) as Record<string, any>;
      assert.equal(doc.kind, 'ModelCanary');
      assert.equal(doc.metadata.name, 'fraud-detector');
      assert.equal(typeof doc.metadata.resourceVersion, 'string');
      assert.equal(doc.status.canaryWeight, 10);
      assert.deepEqual(doc.summary.route, { canary: 0, stable: 100 });
      assert.match(doc.summary.waitingFor, /next check in|a check is due now/);
    }
  });

  test('what cannot be read is one line on stderr naming the fix, exit 2', async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => {
          resolve(typeof address === 'object' && address !== null ? address.port : 1);
        });
      });
    });
    const unreachable = join(tmpdir(), `modelcanary-status-unreachable-${process.pid}.yaml`);
    writeFileSync(unreachable, cluster.sandbox.kubeconfig().replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${closed}`));
    const lines: [string[], RegExp][] = [
      [['nope', ...ns], /^modelcanary status: no ModelCanary "nope" in namespace "ml-serving" \(kubectl get mcan -n ml-serving lists them\)\n$/],
      [['fraud-detector', ...ns, '-o', 'wide'], /^modelcanary status: -o must be json or yaml, not wide\n$/],
      [['fraud-detector', ...ns, '-o', 'view'], /^modelcanary status: -o must be json or yaml, not view\n$/],
      [[...ns], /^modelcanary status: name one ModelCanary: modelcanary status NAME/],
      [['fraud-detector', '--kubeconfig', '/nonexistent/kubeconfig'], /^modelcanary status: the kubeconfig \/nonexistent\/kubeconfig does not exist/],
      [['fraud-detector', '--kubeconfig', unreachable, '-n', 'ml-serving'], /^modelcanary status: the API server refused the connection/],
    ];
    for (const [args, expected] of lines) {
      const run = capture();
      assert.equal(await runStatus(args, run.io, env), 2, args.join(' '));
      assert.match(run.err(), expected);
      assert.equal(run.err().trimEnd().split('\n').length, 1, run.err());
      assert.equal(run.out(), '');
    }
    const help = capture();
    assert.equal(await runStatus(['--help'], help.io, env), 0);
    assert.match(help.out(), /^Usage: modelcanary status NAME/);
    assert.match(help.out(), /--kubeconfig FILE/);
  });

  test('list shows the namespace, -A every namespace, and says when there are none', async () => {
    const here = capture();
    assert.equal(await runList([...ns], here.io, env), 0, here.err());
    assert.match(here.out(), /^NAME +MODEL +STABLE +CANARY +STEP +WEIGHT +PHASE +LAST CHECK +AGE\nfraud-detector +fraud-detector +v1 +v2 +1\/3 +10 % +Progressing +hold +/);
    const all = capture();
    assert.equal(await runList(['-A', '--kubeconfig', cluster.kubeconfigFile], all.io, env), 0, all.err());
    assert.match(all.out(), /^NAMESPACE +NAME[\s\S]*\nml-serving +fraud-detector /);
    const empty = capture();
    assert.equal(await runList(['-n', 'default', '--kubeconfig', cluster.kubeconfigFile], empty.io, env), 0);
    assert.equal(empty.out(), 'No ModelCanaries found in namespace default.\n');
  });

  test('--watch piped: a new block on each change, none for the passing of time, and it ends by itself once the rollout has', async () => {
    await writeStatus(progressing(10, 0));
    const run = capture();
    const stop = new AbortController();
    const guard = setTimeout(() => {
      stop.abort();
    }, 90_000);
    const blocks = (): string[] => run.out().split(/^--- /m).filter((b) => b !== '');
    try {
      const watching = runStatus(['fraud-detector', ...ns, '-w'], run.io, env, { signal: stop.signal, isTTY: false, tickMs: 100 });
      await eventually(() => (blocks().length >= 1 ? true : undefined), 'the first block', 20_000);
      assert.match(blocks()[0] ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d\n/);
      assert.match(blocks()[0] ?? '', /10 % canary/);
      // Ticks pass; the ages change, the rollout does not: no new block.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(blocks().length, 1, run.out());

      await writeStatus(progressing(30, 1));
      await eventually(() => (blocks().some((b) => /Step: +2\/3 \[#{6}-{14}\] 30 % canary/.test(b)) ? true : undefined), 'a block with the new weight', 20_000);

      await recordEvent('Warning', 'WebhookFailed', 'webhook load (rollout): answered 503');
      await eventually(() => (blocks().some((b) => /! +\d+ s +WebhookFailed/.test(b)) ? true : undefined), 'a block with the new event', 20_000);

      await writeStatus({ ...progressing(100, 2), phase: 'Succeeded', message: 'canary v2 passed every step' });
      const code = await within(watching, 30_000);
      assert.equal(code, 0, run.err());
      assert.match(blocks().at(-1) ?? '', /Phase: +Succeeded/);
      assert.doesNotMatch(run.out(), ANSI);
      assert.doesNotMatch(run.out(), /undefined|null|NaN/);
    } finally {
      clearTimeout(guard);
      stop.abort();
    }
  });

  test('--watch survives broken and expired watches: it lists again and goes on showing changes', async () => {
    await writeStatus(progressing(10, 0));
    const run = capture();
    const stop = new AbortController();
    const watching = runStatus(['fraud-detector', ...ns, '-w'], run.io, env, { signal: stop.signal, isTTY: false, tickMs: 100 });
    const last = (): string => run.out().split(/^--- /m).at(-1) ?? '';
    try {
      await eventually(() => (cluster.sandbox.openWatches() >= 2 ? true : undefined), 'the object and its events watched', 20_000);
      assert.ok(cluster.sandbox.faults.dropWatches('reset') >= 2);
      await writeStatus(progressing(30, 1));
      await eventually(() => (/30 % canary/.test(last()) ? true : undefined), 'the change made while the watch was broken', 20_000);

      await eventually(() => (cluster.sandbox.openWatches() >= 2 ? true : undefined), 'the watches back', 20_000);
      cluster.sandbox.faults.compact();
      cluster.sandbox.faults.dropWatches('close');
      await writeStatus({ ...progressing(30, 1), phase: 'Paused' });
      await eventually(() => (/Phase: +Paused/.test(last()) ? true : undefined), 'the change made across a 410', 20_000);
      assert.doesNotMatch(run.out(), /Out of date:/, 'a watch that heals is not reported');
    } finally {
      stop.abort();
    }
    assert.equal(await watching, 0);
  });

  test('--watch on a terminal draws in place, in colour, and ends with 0 when interrupted', async () => {
    await writeStatus(progressing(30, 1));
    const run = capture();
    const stop = new AbortController();
    const watching = runStatus(['fraud-detector', ...ns, '--watch'], run.io, env, { signal: stop.signal, isTTY: true, columns: 70, rows: 60, tickMs: 100 });
    try {
      await eventually(() => (run.out().includes('\x1b[H\x1b[2J') ? true : undefined), 'the first frame', 20_000);
      assert.ok(run.out().includes(`${ESC}[36mProgressing`));
      assert.match(run.out(), /\[██████░{14}\]/);
      await writeStatus({ ...progressing(30, 1), phase: 'Paused', message: 'paused at 30 % (spec.suspend)' });
      const paused = (): boolean => {
        const frame = run.out().split(`${ESC}[H`).at(-1) ?? '';
        return frame.includes(`${ESC}[33mPaused`) && /Waiting for: +spec\.suspend — run: kubectl/.test(frame.replace(SGR, ''));
      };
      await eventually(() => (paused() ? true : undefined), 'the paused frame', 20_000);
      const frames = run.out().split('\x1b[H').filter((f) => f !== '');
      for (const frame of frames) {
        for (const line of frame.split('\n')) assert.ok(columns(line) < 70, line);
      }
    } finally {
      stop.abort();
    }
    assert.equal(await watching, 0);
  });

  test('--watch ends with 1 when the rollout is rolled back, and at once when it already has ended', async () => {
    await writeStatus({ ...progressing(0, 1), phase: 'RolledBack', lastAnalysis: { time: new Date().toISOString(), decision: 'rollback', reason: 'error-rate failed', metrics: [] } });
    const run = capture();
    assert.equal(await runStatus(['fraud-detector', ...ns, '-w'], run.io, env, { isTTY: false }), 1, run.err());
    assert.match(run.out(), /Phase: +RolledBack/);
    const keep = capture();
    const stop = new AbortController();
    const kept = runStatus(['fraud-detector', ...ns, '-w', '--keep', '-o', 'json'], keep.io, env, { signal: stop.signal, isTTY: false, tickMs: 100 });
    await eventually(() => (keep.out() !== '' ? true : undefined), 'the first document', 20_000);
    await writeStatus(progressing(10, 0));
    await eventually(() => (keep.out().includes('"canaryWeight": 10') ? true : undefined), 'a second document with --keep', 20_000);
    stop.abort();
    assert.equal(await kept, 0);
  });

  test('--watch ends with 2 and one line when the ModelCanary is deleted', async () => {
    await writeStatus(progressing(30, 1));
    const run = capture();
    const watching = runStatus(['fraud-detector', ...ns, '-w'], run.io, env, { signal: new AbortController().signal, isTTY: false, tickMs: 100 });
    await eventually(() => (run.out() !== '' && cluster.sandbox.openWatches() >= 2 ? true : undefined), 'the watch', 20_000);
    const deleted = await cluster.kubectl(['delete', 'mcan', 'fraud-detector', '-n', 'ml-serving', '--wait=false']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(await within(watching, 30_000), 2);
    assert.equal(run.err(), 'modelcanary status: ModelCanary "fraud-detector" in namespace "ml-serving" was deleted\n');
  });
});
