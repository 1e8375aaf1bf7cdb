// `modelcanary sandbox`, run in-process: it prints how to point kubectl at it, serves until told
// to stop, and cleans up.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSandbox } from '../src/cli/sandbox.ts';
import { eventually } from './helpers/sandbox.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelcanary-sandbox-cli-'));
after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

function io(): { io: Parameters<typeof runSandbox>[1]; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (err += t) }, stdin: (async function* () {})(), cwd: scratch },
    out: () => out,
    err: () => err,
  };
}

function kubectl(kubeconfig: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(scratch, 'cache'), ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : 1, stdout, stderr });
    });
  });
}

test('sandbox writes a kubeconfig kubectl can use, prints the export line, and stops cleanly when told', async () => {
  const stop = new AbortController();
  const output = io();
  const running = runSandbox(['--kubeconfig', 'kc.yaml', '--namespace', 'ml-serving', '--namespace', 'team-b'], output.io, stop.signal);
  const kubeconfig = join(scratch, 'kc.yaml');
  await eventually(() => (output.out().includes('Ctrl-C') ? true : undefined), 'the sandbox to start');
  assert.match(output.out(), new RegExp(`^export KUBECONFIG=${kubeconfig.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.match(output.out(), /^kubectl apply -f examples\/fraud-detector-istio\.yaml/m);

  const namespaces = await kubectl(kubeconfig, ['get', 'namespaces', '-o', 'name']);
  assert.equal(namespaces.code, 0, namespaces.stderr);
  assert.match(namespaces.stdout, /^namespace\/ml-serving$/m);
  assert.match(namespaces.stdout, /^namespace\/team-b$/m);
  const crds = await kubectl(kubeconfig, ['get', 'crd', '-o', 'name']);
  assert.match(crds.stdout, /modelcanaries\.modelcanary\.io/);
  assert.match(crds.stdout, /virtualservices\.networking\.istio\.io/);
  assert.match(readFileSync(kubeconfig, 'utf8'), /namespace: ml-serving/);

  stop.abort();
  assert.equal(await running, 0);
  assert.match(output.out(), /sandbox stopped\n$/);
  const afterStop = await kubectl(kubeconfig, ['get', 'namespaces', '--request-timeout=2s']);
  assert.notEqual(afterStop.code, 0, 'the server is gone');
});

test('without --kubeconfig the kubeconfig goes to a temporary file that is removed at exit', async () => {
  const stop = new AbortController();
  const output = io();
  const running = runSandbox([], output.io, stop.signal);
  const file = await eventually(() => /^export KUBECONFIG=(.+)$/m.exec(output.out())?.[1], 'the export line');
  assert.ok(existsSync(file));
  stop.abort();
  assert.equal(await running, 0);
  assert.equal(existsSync(file), false);
});

test('a bad --port is refused with exit status 2', async () => {
  const output = io();
  assert.equal(await runSandbox(['--port', 'http'], output.io), 2);
  assert.match(output.err(), /--port must be a whole number/);
});
