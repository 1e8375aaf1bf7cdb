// An HTTP proxy on loopback that counts what passes through it, for bench/scale.ts: requests
// by a key the caller derives from the method and URL, and the TCP connections clients open.
// Responses stream through as they arrive, so a watch stays a watch; it is counted once, when
// it is opened. The time to each answer's headers is summed per key too, to tell a slow client
// from a slow server.

import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The key a request is counted under; undefined: forwarded but not counted. */
export type Classify = (method: string, url: URL) => string | undefined;

export interface CountingProxy {
  /** e.g. http://127.0.0.1:40123, without a trailing slash. */
  url: string;
  /** Requests counted since the last reset, by key. */
  counts(): Map<string, number>;
  /** Mean milliseconds from a request to its answer's headers since the last reset, by key. */
  meanMs(): Map<string, number>;
  /** TCP connections clients opened since the last reset. */
  connections(): number;
  reset(): void;
  /** Closes every connection and stops listening; safe to call more than once. */
  stop(): Promise<void>;
}

// Hop-by-hop headers belong to one connection, not to the message: Node frames each side itself.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

/** Sees each counted request's body, for a log of what was asked. */
export type Tap = (key: string, body: string) => void;

export async function startCountingProxy(target: string, classify: Classify, tap?: Tap): Promise<CountingProxy> {
  const upstream = new URL(target);
  // Kept-alive and unbounded, so that the proxy adds no connection churn of its own upstream:
  // what the client does with its connections is what is measured, at the proxy's front.
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const counts = new Map<string, number>();
  const waited = new Map<string, number>();
  let connections = 0;

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', upstream);
    const key = classify(req.method ?? 'GET', url);
    if (key !== undefined) counts.set(key, (counts.get(key) ?? 0) + 1);
    if (key !== undefined && tap !== undefined) {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        tap(key, url.search.slice(1) + Buffer.concat(chunks).toString('utf8'));
      });
    }
    const sent = performance.now();
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...endToEnd(req.headers), host: upstream.host }, agent },
      (answer) => {
        if (key !== undefined) waited.set(key, (waited.get(key) ?? 0) + performance.now() - sent);
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.headers));
        // A watch answers with headers first and events much later; the client waits for the headers.
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    out.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    // A client that goes away (a watch it ends) ends the upstream request too.
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  };

  const server = createServer(forward);
  server.keepAliveTimeout = 65_000;
  server.on('connection', () => {
    connections++;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    counts: () => new Map(counts),
    meanMs: () => new Map([...waited].map(([key, ms]) => [key, ms / (counts.get(key) ?? 1)])),
    connections: () => connections,
    reset: () => {
      counts.clear();
      waited.clear();
      connections = 0;
    },
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => {
          agent.destroy();
          resolve();
        });
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
