// One connection pool per API server and user, shared by every client made from a KubeConfig.
//
// @kubernetes/client-node 2.0.1 builds a new undici Agent for every request whenever the
// kubeconfig sets any TLS option (a CA, a client certificate, or skip-verify, which in-cluster
// configs and the sandbox do): every request then opens its own TCP (and TLS) connection, which
// cost most of the controller's CPU at a few hundred rollouts (the scale issue's profile). Here
// the dispatcher is made once per distinct set of connection options and reused, so requests
// share keep-alive connections as any HTTP client would.

import type { KubeConfig } from '@kubernetes/client-node';

/** The most distinct connection settings kept (a kubeconfig whose credentials rotate makes new ones). */
const MAX_POOLS = 8;

type CreateDispatcher = (cluster: unknown, agentOptions: Record<string, unknown>) => unknown;

/** `kubeConfig`, changed so that every client made from it shares its connections; returns it. */
export function shareConnections(kubeConfig: KubeConfig): KubeConfig {
  // createDispatcher is private in client-node's types; it is the one place a dispatcher is made.
  const target = kubeConfig as unknown as { createDispatcher: CreateDispatcher; sharedConnections?: true };
  if (target.sharedConnections === true) return kubeConfig;
  const original = target.createDispatcher.bind(kubeConfig);
  const pools = new Map<string, unknown>();
  target.createDispatcher = (cluster, agentOptions) => {
    const key = poolKey(cluster, agentOptions);
    if (pools.has(key)) return pools.get(key);
    const dispatcher = original(cluster, agentOptions);
    if (pools.size >= MAX_POOLS) {
      const [oldest] = pools;
      if (oldest !== undefined) {
        pools.delete(oldest[0]);
        void (oldest[1] as { close?: () => Promise<void> } | undefined)?.close?.().catch(() => undefined);
      }
    }
    pools.set(key, dispatcher);
    return dispatcher;
  };
  target.sharedConnections = true;
  return kubeConfig;
}

/** What makes two connections interchangeable: the server, the proxy and every TLS setting. */
function poolKey(cluster: unknown, agentOptions: Record<string, unknown>): string {
  const c = (cluster ?? {}) as { server?: string; proxyUrl?: string; skipTLSVerify?: boolean };
  const text = (value: unknown): string => {
    if (value === undefined) return '';
    if (Buffer.isBuffer(value)) return value.toString('base64');
    return typeof value === 'string' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
  };
  return JSON.stringify([c.server, c.proxyUrl, c.skipTLSVerify, ...['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'].map((k) => text(agentOptions[k]))]);
}
