import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { LeaderElector } from '../src/controller/leader.ts';
import { sandboxHarness, type SandboxHarness } from './helpers/sandbox.ts';

let harness: SandboxHarness;
before(async () => {
  harness = await sandboxHarness({ namespaces: ['modelcanary-system'] });
});
after(() => harness.stop());

// Shortened timings (the controller uses 15 s / 10 s / 2 s), so the test takes seconds.
const TIMING = { leaseDurationSeconds: 2, renewDeadlineSeconds: 1.5, retryPeriodSeconds: 0.2 };

function elector(identity: string, name: string): LeaderElector {
  return new LeaderElector(harness.kubeConfig, { namespace: 'modelcanary-system', name, identity, ...TIMING });
}

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('of two replicas one leads; when it dies the other takes over within the lease', async () => {
  const leading: string[] = [];
  const a = elector('replica-a', 'lease-handover');
  const b = elector('replica-b', 'lease-handover');
  a.run({ started: () => Promise.resolve(void leading.push('a')), lost: () => undefined });
  await until('a leads', () => a.isLeader);
  b.run({ started: () => Promise.resolve(void leading.push('b')), lost: () => undefined });
  // Several renewals later, b still waits.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(b.isLeader, false);
  assert.deepEqual(leading, ['a']);

  // a dies without handing the lease back (a crash, not a shutdown): it just stops renewing.
  const died = Date.now();
  (a as unknown as { stopped: boolean }).stopped = true;
  await until('b takes over', () => b.isLeader);
  const handover = (Date.now() - died) / 1000;
  assert.ok(handover <= TIMING.leaseDurationSeconds + 2, `took ${handover} s`);
  assert.deepEqual(leading, ['a', 'b']);
  const lease = await harness.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'lease-handover', namespace: 'modelcanary-system' });
  assert.equal(lease.spec?.holderIdentity, 'replica-b');
  assert.equal(lease.spec.leaseTransitions, 1);
  await b.release();
});

test('a graceful stop hands the lease back at once', async () => {
  const a = elector('replica-a', 'lease-release');
  const b = elector('replica-b', 'lease-release');
  a.run({ started: () => Promise.resolve(), lost: () => undefined });
  await until('a leads', () => a.isLeader);
  b.run({ started: () => Promise.resolve(), lost: () => undefined });
  const released = Date.now();
  await a.release();
  await until('b takes over', () => b.isLeader);
  assert.ok(Date.now() - released < TIMING.leaseDurationSeconds * 1000 + 1500, 'sooner than waiting for expiry');
  await b.release();
});

test('a leader that cannot renew stops leading', async () => {
  let lost = false;
  const a = elector('replica-a', 'lease-lost');
  a.run({ started: () => Promise.resolve(), lost: () => (lost = true) });
  await until('a leads', () => a.isLeader);
  harness.sandbox.faults.failNextWrites(1000, 500);
  await until('a notices', () => lost, 10_000);
  assert.equal(a.isLeader, false);
  harness.sandbox.faults.reset();
  await a.release();
});
