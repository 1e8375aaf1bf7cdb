// The embedded API server for tests, with what talks to it: a client-node KubeConfig, the real
// kubectl (with its own kubeconfig file and discovery cache, so that nothing touches ~/.kube),
// and a bounded wait for things that happen asynchronously.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/sandbox.ts';
import { ROOT } from './manifests.ts';

export interface SandboxHarness {
  sandbox: Sandbox;
  kubeConfig: KubeConfig;
  kubeconfigFile: string;
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export async function sandboxHarness(options: SandboxOptions = {}): Promise<SandboxHarness> {
  const sandbox = await startSandbox(options);
  const dir = mkdtempSync(join(tmpdir(), 'modelcanary-sandbox-test-'));
  const kubeconfigFile = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigFile, sandbox.kubeconfig());
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(sandbox.kubeconfig());
  return {
    sandbox,
    kubeConfig,
    kubeconfigFile,
    kubectl: (args, input) =>
      new Promise((resolve) => {
        const child = execFile(
          'kubectl',
          ['--kubeconfig', kubeconfigFile, '--cache-dir', join(dir, 'cache'), ...args],
          { cwd: fileURLToPath(ROOT), timeout: 20_000 },
          (error, stdout, stderr) => {
            resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
          },
        );
        if (input !== undefined) child.stdin?.end(input);
      }),
    stop: async () => {
      await sandbox.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a value other than undefined; fails after `timeoutMs`. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The Status object of a failed client-node call (client-node v2 keeps the body as text). */
export function statusOf(error: unknown): { code: number; reason?: string; message?: string; details?: any } {
  const e = error as { code?: number; body?: unknown };
  const body = typeof e.body === 'string' ? (JSON.parse(e.body) as Record<string, any>) : ((e.body ?? {}) as Record<string, any>);
  return { code: e.code ?? 0, ...body };
}

/** Polls `read` until `accept` holds; fails after `ms` with the last value and `context()` (no timing assert). */
export async function until<T>(what: string, read: () => Promise<T>, accept: (value: T) => boolean, ms = 30_000, context: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() >= deadline) throw new Error(`${what}: still ${JSON.stringify(value).slice(0, 400)} after ${ms} ms ${context()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Every canary weight a ModelCanary's status held, in order, read from the API server's own
 * history of the object (a watch from `fromResourceVersion`): polling could miss a step.
 */
export async function weightHistory(cluster: { kubeConfig: KubeConfig }, namespace: string, name: string, fromResourceVersion: string): Promise<number[]> {
  const server = cluster.kubeConfig.getCurrentCluster()?.server ?? '';
  const token = cluster.kubeConfig.getCurrentUser()?.token;
  const url = `${server}/apis/modelcanary.io/v1alpha1/namespaces/${namespace}/modelcanaries?watch=1&resourceVersion=${fromResourceVersion}&fieldSelector=metadata.name%3D${name}&timeoutSeconds=1`;
  const weights: number[] = [];
  const answer = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  for (const line of (await answer.text()).split('\n').filter((l) => l.trim() !== '')) {
    const event = JSON.parse(line) as { object: { status?: { canaryWeight?: number } } };
    const weight = event.object.status?.canaryWeight;
    if (weight !== undefined && weights.at(-1) !== weight) weights.push(weight);
  }
  return weights;
}
