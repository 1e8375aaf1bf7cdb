// A rollout webhook or webhook gate on loopback: it records every request and answers each path
// as the test scripts it (200 with no body until told otherwise), late when asked to, so that a
// test can outlast a client's timeout or abort a call in flight.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HookCall {
  /** The request's path, without its query. */
  path: string;
  /** The parsed JSON, or the raw text when it was not JSON. */
  body: unknown;
  headers: IncomingHttpHeaders;
  /** Date.now() when the request arrived. */
  at: number;
}

export interface HookAnswer {
  status: number;
  body?: string | undefined;
  headers?: Readonly<Record<string, string>> | undefined;
  /** Answer only after this long. */
  delayMs?: number | undefined;
}

/** Decides an answer; `index` counts the calls to this path, from 0. */
export type HookScript = (call: HookCall, index: number) => HookAnswer;

export interface HookServer {
  url(path: string): string;
  /** Every request, in order of arrival. */
  readonly calls: HookCall[];
  answer(path: string, script: HookScript): void;
  /** The first `n` calls to `path`, once they have arrived; rejects after `timeoutMs`. */
  waitForCalls(path: string, n: number, timeoutMs: number): Promise<HookCall[]>;
  stop(): Promise<void>;
}

export async function startHookServer(): Promise<HookServer> {
  const calls: HookCall[] = [];
  const scripts = new Map<string, HookScript>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text
      }
      const path = new URL(request.url ?? '/', 'http://loopback').pathname;
      const call: HookCall = { path, body, headers: request.headers, at: Date.now() };
      const index = calls.filter((c) => c.path === path).length;
      calls.push(call);
      const planned = scripts.get(path)?.(call, index) ?? { status: 200 };
      if (planned.delayMs === undefined) {
        reply(response, planned);
        return;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        reply(response, planned);
      }, planned.delayMs);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    calls,
    answer: (path, script) => {
      scripts.set(path, script);
    },
    waitForCalls: async (path, n, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const arrived = calls.filter((c) => c.path === path);
        if (arrived.length >= n) return arrived.slice(0, n);
        if (Date.now() > deadline) throw new Error(`${arrived.length} of ${n} calls to ${path} arrived within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    stop: async () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    },
  };
}

function reply(response: ServerResponse, planned: HookAnswer): void {
  // The client may have given up (a timeout, an abort): there is no one to answer.
  if (response.destroyed) return;
  response.writeHead(planned.status, { 'content-type': 'text/plain; charset=utf-8', ...planned.headers });
  response.end(planned.body ?? '');
}
