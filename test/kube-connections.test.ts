// Requests to the API server share connections. client-node 2.0.1 alone opens a new one for
// every request whenever the kubeconfig sets a TLS option (here skip-verify, as in-cluster
// configs and the sandbox do); shareConnections makes every client of one KubeConfig use one
// keep-alive pool. Counted at the server, as the scale issue asks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { shareConnections } from '../src/controller/kube-connections.ts';

async function countingServer(): Promise<{ server: Server; url: string; connections: () => number }> {
  let connections = 0;
  const server = createServer((request, response) => {
    request.resume();
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } }));
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

function kubeConfigFor(url: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kubeConfig;
}

async function fiftyRequests(kubeConfig: KubeConfig): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  for (let i = 0; i < 25; i++) {
    await core.readNamespace({ name: 'x' });
    await custom.getNamespacedCustomObject({ group: 'modelcanary.io', version: 'v1alpha1', namespace: 'x', plural: 'modelcanaries', name: 'x' });
  }
}

test('fifty requests from two API clients of one shared KubeConfig open one or two connections, not fifty', async () => {
  const plain = await countingServer();
  const shared = await countingServer();
  try {
    await fiftyRequests(kubeConfigFor(plain.url));
    await fiftyRequests(shareConnections(kubeConfigFor(shared.url)));
    // Without sharing, client-node opens a connection per request: why this module exists.
    assert.ok(plain.connections() >= 40, `client-node alone opened ${plain.connections()} connections`);
    assert.ok(shared.connections() <= 2, `shared: ${shared.connections()} connections for 50 sequential requests`);
  } finally {
    plain.server.closeAllConnections();
    shared.server.closeAllConnections();
    plain.server.close();
    shared.server.close();
  }
});

test('a KubeConfig shared twice keeps one pool', async () => {
  const server = await countingServer();
  try {
    const kubeConfig = shareConnections(shareConnections(kubeConfigFor(server.url)));
    await fiftyRequests(kubeConfig);
    assert.ok(server.connections() <= 2, `${server.connections()} connections`);
  } finally {
    server.server.closeAllConnections();
    server.server.close();
  }
});
