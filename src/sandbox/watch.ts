// Watch streams: newline-delimited JSON events (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) on a
// response whose headers go out at once — client-node's Watch waits for them before it reports
// the watch as started, so an informer hangs on a server that holds them back.

import type { ServerResponse } from 'node:http';
import type { Target } from './cluster.ts';
import type { WatchDrop } from './faults.ts';
import { expired } from './status.ts';
import type { EventType, KubeObject, Store, StoredEvent } from './store.ts';

export interface WatchRequest {
  target: Target;
  /** null or "0": start with the current state (synthetic ADDED events); otherwise (a number) resume after it. */
  resourceVersion: string | null;
  sendInitialEvents: boolean;
  allowBookmarks: boolean;
  timeoutSeconds: number | undefined;
  matches: (object: KubeObject) => boolean;
  /** The object as the client asked for it: at its version, or as a Table row. */
  encode: (object: KubeObject) => unknown;
  /** The object a BOOKMARK carries. */
  bookmark: (resourceVersion: string, annotations?: Record<string, string>) => unknown;
  contentType: string;
}

interface OpenWatch {
  end(how: WatchDrop): void;
}

export class Watches {
  private readonly open = new Set<OpenWatch>();
  private readonly store: Store;
  private readonly bookmarkIntervalMs: number;

  constructor(store: Store, bookmarkIntervalMs: number) {
    this.store = store;
    this.bookmarkIntervalMs = bookmarkIntervalMs;
  }

  /** Live events still to lose, per kind (a fault: see Faults.loseWatchEvents). */
  private readonly losing = new Map<string, number>();

  count(): number {
    return this.open.size;
  }

  /** The next `count` live events of `kind` reach no watch, as if lost between server and client. */
  loseNext(kind: string, count: number): void {
    this.losing.set(kind, Math.max(0, Math.trunc(count)));
  }

  private lose(kind: string): boolean {
    const left = this.losing.get(kind) ?? 0;
    if (left <= 0) return false;
    this.losing.set(kind, left - 1);
    return true;
  }

  /** Ends every open watch; returns how many there were. */
  dropAll(how: WatchDrop): number {
    const all = [...this.open];
    for (const watch of all) watch.end(how);
    return all.length;
  }

  serve(response: ServerResponse, request: WatchRequest): void {
    const storage = request.target.type.storage;
    const resume = request.resourceVersion !== null && request.resourceVersion !== '' && request.resourceVersion !== '0' && !request.sendInitialEvents;
    let history: StoredEvent[] = [];
    if (resume) {
      const requested = Number(request.resourceVersion);
      const since = this.store.eventsSince(storage, requested);
      if (since === 'expired') {
        // A real server answers 200 and then a 410 Expired event; clients re-list on either.
        writeHead(response, request.contentType);
        response.end(line('ERROR', expired(request.resourceVersion ?? '', this.store.oldestResumable(storage)).status));
        return;
      }
      history = since;
    }

    writeHead(response, request.contentType);
    const timers: NodeJS.Timeout[] = [];
    const send = (type: EventType | 'BOOKMARK', object: unknown): void => {
      if (!response.writableEnded) response.write(line(type, object));
    };
    const deliver = (event: StoredEvent): void => {
      const now = request.matches(event.object);
      const before = event.previous !== undefined && request.matches(event.previous);
      switch (event.type) {
        case 'ADDED':
          if (now) send('ADDED', request.encode(event.object));
          return;
        case 'DELETED':
          if (now) send('DELETED', request.encode(event.object));
          return;
        case 'MODIFIED':
          // A filtered watch sees an object enter or leave its selection as ADDED or DELETED.
          if (now) send(before ? 'MODIFIED' : 'ADDED', request.encode(event.object));
          else if (before) send('DELETED', request.encode(event.object));
          return;
      }
    };

    const watch: OpenWatch = {
      end: (how) => {
        if (how === 'reset') response.socket?.destroy();
        else response.end();
        cleanup();
      },
    };
    const unsubscribe = this.store.subscribe(storage, (event) => {
      if (!this.lose(request.target.type.kind)) deliver(event);
    }, () => {
      watch.end('close');
    });
    const cleanup = (): void => {
      unsubscribe();
      for (const timer of timers) clearTimeout(timer);
      this.open.delete(watch);
    };
    this.open.add(watch);
    response.on('close', cleanup);

    if (resume) {
      for (const event of history) deliver(event);
    } else {
      for (const object of this.store.list(storage, request.target.namespace).filter(request.matches)) send('ADDED', request.encode(object));
      if (request.sendInitialEvents && request.allowBookmarks) {
        send('BOOKMARK', request.bookmark(String(this.store.currentRevision()), { 'k8s.io/initial-events-end': 'true' }));
      }
    }
    if (request.allowBookmarks) {
      const interval = setInterval(() => {
        send('BOOKMARK', request.bookmark(String(this.store.currentRevision())));
      }, this.bookmarkIntervalMs);
      interval.unref();
      timers.push(interval);
    }
    if (request.timeoutSeconds !== undefined && request.timeoutSeconds > 0) {
      const timeout = setTimeout(() => {
        watch.end('close');
      }, request.timeoutSeconds * 1000);
      timeout.unref();
      timers.push(timeout);
    }
  }
}

function writeHead(response: ServerResponse, contentType: string): void {
  response.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-cache, private' });
  response.flushHeaders();
}

function line(type: string, object: unknown): string {
  return `${JSON.stringify({ type, object })}\n`;
}
