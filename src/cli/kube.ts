// The cluster commands (status, list, promote, abort, retry, pause, resume, approve) reach the
// API server the way kubectl does: --kubeconfig or KUBECONFIG or ~/.kube/config (in-cluster
// when there is none), --context, and -n/--namespace falling back to the context's namespace.

import { existsSync, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { shareConnections } from '../controller/kube-connections.ts';
import { codeWords, describeError, errorCode, EXIT, type Io } from './io.ts';

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

/** Where a pod finds its service account's token: the sign of running in a cluster. */
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const SET_KUBECONFIG = 'pass --kubeconfig FILE or set KUBECONFIG to a kubeconfig file';

/**
 * The kubeconfig files to load, as kubectl finds them: --kubeconfig, else the KUBECONFIG list
 * (empty counts as unset), else ~/.kube/config, else the pod's service account. A file that
 * cannot be read, or nothing found at all, comes back as the file and the reason in words.
 */
export type KubeconfigSource = { files: string[] } | { inCluster: true } | { file: string; reason: string; missing: boolean } | { none: string };

export function findKubeconfig(flag: string | undefined, env: Record<string, string | undefined>): KubeconfigSource {
  if (flag === '') return { none: `--kubeconfig is empty: ${SET_KUBECONFIG}` };
  const files = (flag ?? env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  const home = env.HOME ?? '';
  const inHome = home === '' ? undefined : join(home, '.kube', 'config');
  if (files.length === 0 && inHome !== undefined && existsSync(inHome)) files.push(inHome);
  for (const file of files) {
    const problem = unreadable(file);
    if (problem !== undefined) return { file, ...problem };
  }
  if (files.length > 0) return { files };
  if (existsSync(SERVICE_ACCOUNT_TOKEN)) return { inCluster: true };
  const unset = env.KUBECONFIG === undefined ? 'KUBECONFIG is not set' : 'KUBECONFIG is empty';
  return { none: `no kubeconfig: ${unset}, ${inHome ?? '~/.kube/config'} does not exist, and this is not a pod in a cluster; ${SET_KUBECONFIG}` };
}

/** Why a kubeconfig file cannot be used, in words; undefined when it can be read. */
function unreadable(file: string): { reason: string; missing: boolean } | undefined {
  try {
    const stat = statSync(file);
    if (stat.isDirectory()) return { reason: codeWords('EISDIR') ?? 'is a directory', missing: false };
    if (stat.size === 0) return { reason: 'the file is empty', missing: false };
    return undefined;
  } catch (error) {
    return { reason: describeError(error), missing: errorCode(error) === 'ENOENT' };
  }
}

/** The cluster to talk to, or a one-line problem that says what to fix. */
export function loadKube(flags: KubeFlags, env: Record<string, string | undefined>): KubeTarget | { problem: string } {
  const kubeConfig = new KubeConfig();
  const source = findKubeconfig(flags.kubeconfig, env);
  if ('none' in source) return { problem: source.none };
  if ('reason' in source) {
    return { problem: source.missing ? `the kubeconfig ${source.file} does not exist: ${SET_KUBECONFIG}` : `cannot read the kubeconfig ${source.file}: ${source.reason}; ${SET_KUBECONFIG}` };
  }
  try {
    if ('inCluster' in source) {
      kubeConfig.loadFromCluster();
    } else {
      // A KUBECONFIG list is merged, the first file's current context winning, as kubectl does.
      const [first, ...rest] = source.files;
      if (first !== undefined) kubeConfig.loadFromFile(first);
      for (const file of rest) {
        const more = new KubeConfig();
        more.loadFromFile(file);
        kubeConfig.mergeConfig(more, true);
      }
    }
  } catch (error) {
    return { problem: `cannot read the kubeconfig: ${describeError(error)}` };
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

/**
 * An API error in one line: the server's own message when it sent one, else what kept the
 * request from it in words (naming the server when the caller knows it). Never a stack.
 */
export function kubeProblem(error: unknown, server?: string): string {
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
  const at = server === undefined ? '' : ` at ${server}`;
  const named = server === undefined ? '' : ` (${server})`;
  const code = errorCode(error);
  if (code === 'ECONNREFUSED') return `the API server refused the connection${named}: is the cluster up, and is this the right context?`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `the API server's host name does not resolve${named}: check the kubeconfig's server address`;
  const words = codeWords(code);
  if (words !== undefined) return `cannot reach the API server${at}: ${words}; check the kubeconfig's server address and that the cluster is up`;
  const { message, cause } = error as { message?: unknown; cause?: unknown };
  if (message === 'fetch failed' && cause !== undefined) return `cannot reach the API server${at}: ${describeError(cause)}`;
  return describeError(error);
}

/**
 * The kubeconfig `run` and `demo` will load, checked before they start, so that a missing or
 * empty one is one line that says what to do rather than a loader's error. Returns the
 * environment to run with (an empty KUBECONFIG means unset, as for kubectl) or the exit code.
 * `demo` uses a cluster only when given --kubeconfig; without it, it brings its own.
 */
export function kubeconfigFor(command: 'run' | 'demo', flag: string | undefined, io: Io, env: Record<string, string | undefined>): Record<string, string | undefined> | number {
  const rest = { ...env };
  if (rest.KUBECONFIG === '') delete rest.KUBECONFIG;
  if (command === 'demo' && flag === undefined) return rest;
  const found = findKubeconfig(flag === undefined ? undefined : flag === '' ? '' : resolve(io.cwd, flag), command === 'demo' ? {} : env);
  if ('none' in found) {
    io.stderr.write(`modelcanary ${command}: ${found.none}\n`);
    return EXIT.unreadable;
  }
  if ('reason' in found) {
    const fix = command === 'demo' ? 'pass --kubeconfig FILE naming a kubeconfig, or leave it out to run on the embedded API server' : 'pass --kubeconfig FILE or set KUBECONFIG to a kubeconfig file';
    io.stderr.write(`modelcanary ${command}: cannot load the kubeconfig ${flag ?? found.file}: ${found.reason}; ${fix}\n`);
    return EXIT.unreadable;
  }
  return rest;
}
