// The cluster commands (status, list, promote, abort, retry, pause, resume, approve) reach the
// API server the way kubectl does: --kubeconfig or KUBECONFIG or ~/.kube/config (in-cluster
// when there is none), --context, and -n/--namespace falling back to the context's namespace.

import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { shareConnections } from '../controller/kube-connections.ts';

export const KUBE_OPTIONS = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
} as const;

export const KUBE_USAGE = `  -n, --namespace NS    the ModelCanary's namespace; default: the context's, then "default"
  --context NAME        the kubeconfig context to use; default: the current one
  --kubeconfig FILE     default: $KUBECONFIG, then ~/.kube/config, then in-cluster
`;

export interface KubeTarget {
  kubeConfig: KubeConfig;
  namespace: string;
}

export interface KubeFlags {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

/** The cluster to talk to, or a one-line problem that says what to fix. */
export function loadKube(flags: KubeFlags, env: Record<string, string | undefined>): KubeTarget | { problem: string } {
  const kubeConfig = new KubeConfig();
  const files = (flags.kubeconfig ?? env.KUBECONFIG ?? '').split(':').filter((f) => f !== '');
  const missing = files.find((f) => !existsSync(f));
  if (missing !== undefined) return { problem: `the kubeconfig ${missing} does not exist: pass --kubeconfig FILE or set KUBECONFIG to a kubeconfig file` };
  try {
    // A KUBECONFIG list is merged, the first file's current context winning, as kubectl does.
    const [first, ...rest] = files;
    if (first === undefined) kubeConfig.loadFromDefault();
    else kubeConfig.loadFromFile(first);
    for (const file of rest) {
      const more = new KubeConfig();
      more.loadFromFile(file);
      kubeConfig.mergeConfig(more, true);
    }
  } catch (error) {
    return { problem: `cannot read the kubeconfig: ${(error as Error).message}` };
  }
  if (flags.context !== undefined) {
    if (kubeConfig.getContextObject(flags.context) === null) {
      const known = kubeConfig.getContexts().map((c) => c.name);
      return { problem: `no context "${flags.context}" in the kubeconfig (it has: ${known.length === 0 ? 'none' : known.join(', ')})` };
    }
    kubeConfig.setCurrentContext(flags.context);
  }
  if (kubeConfig.getCurrentCluster() === null) return { problem: 'no cluster to talk to: the kubeconfig has no current context; pass --kubeconfig FILE or --context NAME' };
  const namespace = flags.namespace ?? kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? 'default';
  return { kubeConfig: shareConnections(kubeConfig), namespace };
}

/** An API error in one line: the server's own message when it sent one, never a stack. */
export function kubeProblem(error: unknown): string {
  const body = (error as { body?: unknown }).body;
  const text = typeof body === 'string' ? body : body === undefined ? undefined : JSON.stringify(body);
  if (text !== undefined) {
    try {
      const status = JSON.parse(text) as { message?: unknown };
      if (typeof status.message === 'string') return status.message;
    } catch {
      // not a Status object
    }
  }
  const code = (error as { code?: unknown; cause?: { code?: unknown } }).code ?? (error as { cause?: { code?: unknown } }).cause?.code;
  if (code === 'ECONNREFUSED') return 'the API server refused the connection: is the cluster up, and is this the right context?';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'the API server\'s host name does not resolve: check the kubeconfig\'s server address';
  return (error as Error).message.split('\n')[0] ?? 'the API server could not be reached';
}
