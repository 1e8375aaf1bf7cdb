// An embedded Kubernetes API server, in memory, for the demo and for tests: the real
// @kubernetes/client-node and the real kubectl talk to it over HTTP on 127.0.0.1 as they would
// to a cluster. See README.md in this folder for what it serves and what it leaves out.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { stringify } from 'yaml';
import { builtinTypes, defaultCrds } from './builtins.ts';
import { Cluster } from './cluster.ts';
import { createFaults, type Faults } from './faults.ts';
import { Registry } from './registry.ts';
import { createHandler } from './server.ts';
import { Store } from './store.ts';
import { Watches } from './watch.ts';

export { defaultCrds } from './builtins.ts';
export type { Faults, WatchDrop } from './faults.ts';

export interface SandboxOptions {
  /** Port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  /** Host to listen on; default 127.0.0.1. */
  host?: string;
  /** CustomResourceDefinitions installed at start; default `defaultCrds()` (ModelCanary, Istio, Gateway API). */
  crds?: object[];
  /** Namespaces created at start, besides default, kube-system, kube-public and kube-node-lease. */
  namespaces?: string[];
  /** Watch events retained per resource for resuming watches (default 1000); older resumes get 410 Gone. */
  watchHistory?: number;
  /** How often a watch that allows bookmarks gets one (default 60 s, as a real server). */
  bookmarkIntervalMs?: number;
  /** The clock for timestamps and ages; default the system clock. */
  now?: () => Date;
}

export interface Sandbox {
  /** e.g. http://127.0.0.1:40123, without a trailing slash. */
  url: string;
  /** A kubeconfig for this sandbox (context `modelcanary-sandbox`, namespace `default`). */
  kubeconfig(options?: { namespace?: string }): string;
  faults: Faults;
  /** Open watch connections, for tests that wait for a client to (re)connect. */
  openWatches(): number;
  /** Ends all watches and connections and stops listening; safe to call more than once. */
  stop(): Promise<void>;
}

export const CONTEXT_NAME = 'modelcanary-sandbox';

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const now = options.now ?? ((): Date => new Date());
  const store = new Store(options.watchHistory ?? 1000);
  const registry = new Registry(builtinTypes());
  const cluster = new Cluster(store, registry, now);
  cluster.bootstrap(options.namespaces ?? [], options.crds ?? defaultCrds());
  const watches = new Watches(store, options.bookmarkIntervalMs ?? 60_000);
  const faults = createFaults({
    dropWatches: (how) => watches.dropAll(how),
    compact: () => {
      store.compact();
    },
    loseWatchEvents: (kind, count) => {
      watches.loseNext(kind, count);
    },
  });

  const server = createServer(createHandler({ cluster, watches, faults, now }));
  // Longer than client keep-alive timeouts, so that the server never closes a connection a
  // client is about to reuse.
  server.keepAliveTimeout = 65_000;
  const host = options.host ?? '127.0.0.1';
  await listen(server, options.port ?? 0, host);
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let stopped: Promise<void> | undefined;
  return {
    url,
    kubeconfig: (kubeconfigOptions = {}) => kubeconfigFor(url, kubeconfigOptions.namespace ?? 'default'),
    faults,
    openWatches: () => watches.count(),
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        faults.reset();
        watches.dropAll('close');
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * client-node refuses an http:// server unless the cluster skips TLS verification, and kubectl
 * accepts the same flag for plain HTTP; there are no credentials, the sandbox does not check any.
 */
export function kubeconfigFor(url: string, namespace: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: CONTEXT_NAME, cluster: { server: url, 'insecure-skip-tls-verify': true } }],
    users: [{ name: CONTEXT_NAME, user: {} }],
    contexts: [{ name: CONTEXT_NAME, context: { cluster: CONTEXT_NAME, user: CONTEXT_NAME, namespace } }],
    'current-context': CONTEXT_NAME,
    preferences: {},
  });
}
