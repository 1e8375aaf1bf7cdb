// A Slack incoming webhook on loopback. It answers as Slack does (text/plain, "ok" or an error
// token, Retry-After on 429), follows a script of answers the test sets, and refuses with
// 400 invalid_blocks any payload that breaks Block Kit's limits or lacks its fallback text, as
// Slack would: a test that gets "ok" from it has sent a payload Slack takes.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkBlockKitLimits } from '../../src/notify/slack.ts';

export type FakeSlackAnswer =
  | 'ok'
  | { status: number; body?: string; retryAfter?: number }
  /** Answers only after this long (then `then`, by default ok): to outlast a client's timeout. */
  | { slowMs: number; then?: FakeSlackAnswer };

export interface Received {
  /** The parsed JSON, or the raw text when it was not JSON. */
  body: unknown;
  headers: IncomingHttpHeaders;
  /** Date.now() when the request arrived. */
  at: number;
}

const HOOK_PATH = '/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX';

export class FakeSlack {
  /** Every POST, in order of arrival. */
  readonly received: Received[] = [];
  /** The POSTs answered ok. */
  readonly accepted: Received[] = [];
  /** For each payload refused for Block Kit's limits, why. */
  readonly refused: string[][] = [];
  /** Answers to give, first to last; once used up, `defaultAnswer`. */
  readonly script: FakeSlackAnswer[] = [];
  defaultAnswer: FakeSlackAnswer = 'ok';
  /** Off: any JSON is taken (to stand in for a generic webhook receiver). */
  checkBlocks = true;
  url = '';
  private server: Server | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  async start(): Promise<string> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (request.method !== 'POST' || request.url !== HOOK_PATH) {
          answer(response, 404, 'no_service');
          return;
        }
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // kept as text: answered invalid_payload below
        }
        const received: Received = { body, headers: request.headers, at: Date.now() };
        this.received.push(received);
        this.reply(response, received, typeof body === 'string', this.script.shift() ?? this.defaultAnswer);
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${HOOK_PATH}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const server = this.server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  }

  private reply(response: ServerResponse, received: Received, unreadable: boolean, planned: FakeSlackAnswer): void {
    if (planned !== 'ok' && 'slowMs' in planned) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.reply(response, received, unreadable, planned.then ?? 'ok');
      }, planned.slowMs);
      this.timers.add(timer);
      return;
    }
    if (planned !== 'ok') {
      answer(response, planned.status, planned.body ?? '', planned.retryAfter);
      return;
    }
    if (unreadable) {
      answer(response, 400, 'invalid_payload');
      return;
    }
    const problems = this.checkBlocks ? checkBlockKitLimits(received.body) : [];
    if (problems.length > 0) {
      this.refused.push(problems);
      answer(response, 400, 'invalid_blocks');
      return;
    }
    this.accepted.push(received);
    answer(response, 200, 'ok');
  }
}

function answer(response: ServerResponse, status: number, body: string, retryAfter?: number): void {
  // The client may have given up (a timeout): there is no one to answer.
  if (response.destroyed) return;
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...(retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) }) });
  response.end(body);
}
