// A fault-injecting proxy in front of the real kube-apiserver (DESIGN.md §6): plain HTTP on
// loopback for the client, HTTPS with the envtest CA to the server. It fails a share of writes
// with the API server's own 409 Conflict and ends every open watch at a period, as a server at
// its request timeout or a broken connection does; everything else passes through unchanged.
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface FaultProxy {
  url: string;
  /** A client-node KubeConfig that talks through the proxy with `token`. */
  kubeConfig(token: string): KubeConfig;
  /** Fails each write (POST, PUT, PATCH, DELETE) with probability `share`, drawn from `random`. */
  failShareOfWrites(share: number, random: () => number): void;
  /** Ends every open watch every `ms` (0 stops). */
  dropWatchesEvery(ms: number): void;
  reset(): void;
  /** Writes failed so far. */
  failed(): number;
  stop(): Promise<void>;
}

export async function startFaultProxy(upstream: string, ca: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  const watches = new Set<ServerResponse>();
  let share = 0;
  let random: () => number = Math.random;
  let failures = 0;
  let timer: ReturnType<typeof setInterval> | undefined;

  const server: Server = createServer((incoming: IncomingMessage, outgoing: ServerResponse) => {
    const write = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(incoming.method ?? '');
    if (write && share > 0 && random() < share) {
      failures++;
      incoming.resume();
      outgoing.writeHead(409, { 'content-type': 'application/json' });
      outgoing.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          reason: 'Conflict',
          code: 409,
          message: 'Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected by the fault proxy)',
        }),
      );
      return;
    }
    const isWatch = /[?&]watch=(true|1)\b/.test(incoming.url ?? '');
    const forward = (target.protocol === 'https:' ? httpsRequest : httpRequest)(
      {
        host: target.hostname,
        port: target.port,
        method: incoming.method,
        path: incoming.url,
        headers: { ...incoming.headers, host: target.host },
        ca,
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
        if (isWatch) {
          watches.add(outgoing);
          outgoing.on('close', () => watches.delete(outgoing));
        }
      },
    );
    forward.on('error', () => {
      if (!outgoing.headersSent) outgoing.writeHead(502);
      outgoing.end();
    });
    outgoing.on('close', () => forward.destroy());
    incoming.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const stopTimer = (): void => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  };
  return {
    url,
    kubeConfig: (token) => {
      const config = new KubeConfig();
      config.loadFromOptions({
        clusters: [{ name: 'proxy', server: url, skipTLSVerify: true }],
        users: [{ name: 'user', token }],
        contexts: [{ name: 'proxy', cluster: 'proxy', user: 'user' }],
        currentContext: 'proxy',
      });
      return config;
    },
    failShareOfWrites: (s, r) => {
      share = s;
      random = r;
    },
    dropWatchesEvery: (ms) => {
      stopTimer();
      if (ms <= 0) return;
      timer = setInterval(() => {
        for (const watch of watches) watch.end();
        watches.clear();
      }, ms);
      timer.unref();
    },
    reset: () => {
      share = 0;
      stopTimer();
    },
    failed: () => failures,
    stop: async () => {
      stopTimer();
      server.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}
