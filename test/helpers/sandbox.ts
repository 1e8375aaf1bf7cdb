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
