// /metrics, /healthz and /readyz on one port.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthServer {
  /** The bound address, such as 127.0.0.1:8080. */
  address: string;
  close(): Promise<void>;
}

/** Serves on `listen` (":8080", "127.0.0.1:8080" or "0" for any free port). Ready once `ready()` says so. */
export async function startHealthServer(listen: string, registry: Registry, ready: () => boolean): Promise<HealthServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => {
          response.writeHead(200, { 'content-type': registry.contentType });
          response.end(text);
        },
        (error: unknown) => {
          response.writeHead(500, { 'content-type': 'text/plain' });
          response.end(String(error));
        },
      );
      return;
    }
    if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const ok = ready();
      response.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      response.end(ok ? 'ok\n' : 'caches not synced yet\n');
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' });
    response.end('not found: /metrics, /healthz, /readyz\n');
  });
  const [host, port] = splitAddress(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${bound.address}:${bound.port}`,
    close: () => new Promise((resolve) => server.close(() => { resolve(); })),
  };
}

function splitAddress(listen: string): [string | undefined, number] {
  const index = listen.lastIndexOf(':');
  if (index < 0) return [undefined, Number(listen)];
  const host = listen.slice(0, index);
  return [host === '' ? undefined : host, Number(listen.slice(index + 1))];
}
