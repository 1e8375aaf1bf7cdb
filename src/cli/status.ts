// `modelcanary status NAME [--watch]` and `modelcanary list`: read a ModelCanary, its events and
// its route, and show them the way status-view.ts lays them out. With --watch, the object and its
// events are followed with list-and-watch (resumed from the last resourceVersion, listed again
// on 410 Expired, retried with a bounded backoff on errors), and the view is redrawn on every
// change and every tick, so that its ages and "next check in" stay true.

import { ApiException, CoreV1Api, CustomObjectsApi, Watch, type KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { z } from 'zod';
import { API_VERSION, GROUP, KIND, ModelCanarySpec, ObjectMeta, PLURAL, VERSION, type ModelCanary } from '../api/modelcanary.ts';
import { ModelCanaryStatus } from '../api/status.ts';
import { checkAgainst } from '../api/validate.ts';
import { KubeObjectStore } from '../controller/kube-store.ts';
import { withSignal } from '../controller/kube-options.ts';
import { intentOf } from '../controller/pass.ts';
import { createRouter } from '../routing/router.ts';
import { parseCommand } from './args.ts';
import { EXIT, type Io } from './io.ts';
import { KUBE_OPTIONS, KUBE_USAGE, kubeProblem, loadKube } from './kube.ts';
import { renderList, renderStatus, rolloutEnded, summaryOf, type RouteWeight, type StatusEvent, type StatusView } from './status-view.ts';
import { pause } from './pause.ts';

const STATUS_USAGE = `Usage: modelcanary status NAME [-w] [--keep] [-o json|yaml] [-n NS] [--context NAME] [--kubeconfig FILE]

Shows a ModelCanary's rollout: its phase, the step and the weight in the status beside the weight
found on the route, the last check with each metric's values against its bound, what the rollout
waits for (a check, a gate's approval, a rollout window, a free slot), the conditions that are
False and the latest events. As a kubectl plugin: kubectl modelcanary status NAME.

Flags:
  -w, --watch           redraw on every change (in place on a terminal; when piped, a new block
                        headed by its time whenever what it shows changes), until the rollout
                        ends or Ctrl-C
  --keep                with --watch: go on after the rollout ended (to follow the next one)
  -o, --output FORMAT   json or yaml: the ModelCanary as the API server returned it, plus
                        "summary": {"route": {"canary": N, "stable": N} or {"problem": TEXT},
                        "waitingFor": TEXT or null}; with --watch, one document per change
${KUBE_USAGE}
Colour is used on a terminal unless NO_COLOR is set.
Exit status: 0 shown (with --watch: stopped by Ctrl-C, or the rollout succeeded), 1 with --watch:
the rollout was rolled back, 2 the ModelCanary or the cluster could not be read (with --watch:
the ModelCanary was deleted).
`;

const LIST_USAGE = `Usage: modelcanary list [-A] [-n NS] [--context NAME] [--kubeconfig FILE]

Lists ModelCanaries with their model, versions, step, weight, phase and last decision.
As a kubectl plugin: kubectl modelcanary list.

Flags:
  -A, --all-namespaces  list every namespace's
${KUBE_USAGE}
Exit status: 0 listed, 2 the cluster could not be read.
`;

const RESOURCE = { group: GROUP, version: VERSION, plural: PLURAL };
const MAX_BACKOFF_MS = 30_000;
const ROUTE_EVERY_MS = 5_000;
/** How long an ended watch waits for the event of its end before its last frame. */
const FINAL_EVENTS_MS = 1500;
const ROUTE_TIMEOUT_MS = 10_000;

type Json = Record<string, unknown>;
type Output = 'view' | 'json' | 'yaml';

export interface StatusOptions {
  /** Ends --watch with exit 0. Default: the process's SIGINT (Ctrl-C). */
  signal?: AbortSignal;
  /** Whether stdout is a terminal (draw in place, in colour). Default: stdout's own isTTY. */
  isTTY?: boolean;
  /** The terminal's size. Default: stdout's own, read at every draw so that a resize is followed. */
  columns?: number;
  rows?: number;
  now?: () => Date;
  /** How often --watch redraws for the passing of time. Default 1 s on a terminal, 2 s when piped. */
  tickMs?: number;
}

interface Terminal {
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

export async function runStatus(args: string[], io: Io, env: Record<string, string | undefined>, options: StatusOptions = {}): Promise<number> {
  const parsed = parseCommand(
    'status',
    args,
    { ...KUBE_OPTIONS, watch: { type: 'boolean', short: 'w' }, keep: { type: 'boolean' }, output: { type: 'string', short: 'o' } },
    STATUS_USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const fail = (problem: string): number => {
    io.stderr.write(`modelcanary status: ${problem}\n`);
    return EXIT.unreadable;
  };
  const [name, ...extra] = positionals;
  if (name === undefined || extra.length > 0) return fail('name one ModelCanary: modelcanary status NAME (modelcanary list shows them)');
  if (values.output !== undefined && values.output !== 'json' && values.output !== 'yaml') return fail(`-o must be json or yaml, not ${values.output}`);
  const output: Output = values.output ?? 'view';
  const kube = loadKube(values, env);
  if ('problem' in kube) return fail(kube.problem);

  const terminal = io.stdout as Terminal;
  const tty = options.isTTY ?? terminal.isTTY === true;
  const reader = new Reader(kube.kubeConfig, kube.namespace, name);
  const first = await reader.get();
  if ('problem' in first) return fail(first.problem);
  const now = options.now ?? ((): Date => new Date());
  const screen: Screen = {
    io,
    output,
    tty,
    color: tty && (env.NO_COLOR ?? '') === '' && env.TERM !== 'dumb',
    columns: () => options.columns ?? (tty ? (terminal.columns ?? 80) : Infinity),
    rows: () => options.rows ?? (tty ? (terminal.rows ?? Infinity) : Infinity),
    now,
  };
  const view = await reader.view(first.object);
  if (values.watch !== true) {
    screen.io.stdout.write(oneShot(screen, view));
    return EXIT.ok;
  }

  let stopOnSigint: (() => void) | undefined;
  let signal = options.signal;
  if (signal === undefined) {
    const interrupted = new AbortController();
    stopOnSigint = () => {
      interrupted.abort();
    };
    process.once('SIGINT', stopOnSigint);
    signal = interrupted.signal;
  }
  try {
    return await watchStatus(reader, screen, view, { keep: values.keep === true, signal, tickMs: options.tickMs ?? (tty ? 1000 : 2000) });
  } finally {
    if (stopOnSigint !== undefined) process.off('SIGINT', stopOnSigint);
  }
}

export async function runList(args: string[], io: Io, env: Record<string, string | undefined>, options: { isTTY?: boolean; now?: () => Date } = {}): Promise<number> {
  const parsed = parseCommand('list', args, { ...KUBE_OPTIONS, 'all-namespaces': { type: 'boolean', short: 'A' } }, LIST_USAGE, io);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const fail = (problem: string): number => {
    io.stderr.write(`modelcanary list: ${problem}\n`);
    return EXIT.unreadable;
  };
  if (positionals.length > 0) return fail(`takes no NAME (modelcanary status ${positionals[0] ?? ''} shows one)`);
  const kube = loadKube(values, env);
  if ('problem' in kube) return fail(kube.problem);
  const all = values['all-namespaces'] === true;
  const api = kube.kubeConfig.makeApiClient(CustomObjectsApi);
  let items: Json[];
  try {
    const list = (await (all ? api.listClusterCustomObject(RESOURCE) : api.listNamespacedCustomObject({ ...RESOURCE, namespace: kube.namespace }))) as { items?: Json[] };
    items = list.items ?? [];
  } catch (error) {
    return fail(notServed(error) ? CRD_MISSING : kubeProblem(error, kube.kubeConfig.getCurrentCluster()?.server));
  }
  const key = (o: Json): string => {
    const metadata = ObjectMeta.safeParse(o.metadata);
    return metadata.success ? `${metadata.data.namespace ?? ''}/${metadata.data.name}` : '';
  };
  items.sort((a, b) => key(a).localeCompare(key(b)));
  const tty = options.isTTY ?? (io.stdout as Terminal).isTTY === true;
  io.stdout.write(renderList(items, { now: (options.now ?? (() => new Date()))(), color: tty && (env.NO_COLOR ?? '') === '', allNamespaces: all, namespace: kube.namespace }));
  return EXIT.ok;
}

// ── Reading ─────────────────────────────────────────────────────────────────────────────

const CRD_MISSING = 'the cluster does not serve modelcanaries.modelcanary.io: install the CRD (modelcanary crds | kubectl apply -f -)';

/** A 404 for the kind itself (the CRD is not installed), not for one object of it. */
function notServed(error: unknown): boolean {
  if (!(error instanceof ApiException) || error.code !== 404) return false;
  const body: unknown = error.body;
  const text = typeof body === 'string' ? body : JSON.stringify(body ?? {});
  try {
    const status = JSON.parse(text) as { details?: { name?: unknown } };
    return status.details?.name === undefined;
  } catch {
    return true;
  }
}

const time = z
  .union([z.string(), z.date().transform((d) => d.toISOString())])
  .nullish()
  .catch(undefined);

/** An Event as client-node lists it (Dates) or a watch sends it (strings). */
const EventObject = z.looseObject({
  metadata: z.looseObject({ uid: z.string().optional().catch(undefined), name: z.string().optional().catch(undefined), creationTimestamp: time }).catch({}),
  involvedObject: z.looseObject({ uid: z.string().optional().catch(undefined) }).catch({}),
  type: z.string().catch(''),
  reason: z.string().catch(''),
  message: z.string().catch(''),
  count: z.number().nullish().catch(undefined),
  lastTimestamp: time,
  eventTime: time,
  firstTimestamp: time,
  series: z.looseObject({ lastObservedTime: time, count: z.number().nullish().catch(undefined) }).nullish().catch(undefined),
});

interface HeldEvent extends StatusEvent {
  key: string;
  involvedUid: string | undefined;
}

function eventOf(raw: unknown): HeldEvent | undefined {
  const parsed = EventObject.safeParse(raw);
  if (!parsed.success) return undefined;
  const e = parsed.data;
  const key = e.metadata.uid ?? e.metadata.name;
  if (key === undefined) return undefined;
  return {
    key,
    involvedUid: e.involvedObject.uid,
    type: e.type,
    reason: e.reason,
    message: e.message,
    time: e.series?.lastObservedTime ?? e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata.creationTimestamp ?? undefined,
    count: e.series?.count ?? e.count ?? 1,
  };
}

/** The events of the object with this uid (all of them when it is unknown), newest last. */
function eventsFor(events: Iterable<HeldEvent>, uid: string | undefined): StatusEvent[] {
  const at = (e: StatusEvent): number => (e.time === undefined ? 0 : Date.parse(e.time) || 0);
  return [...events]
    .filter((e) => uid === undefined || e.involvedUid === undefined || e.involvedUid === uid)
    .sort((a, b) => at(a) - at(b))
    .map(({ type, reason, message, time: t, count }) => ({ type, reason, message, time: t, count }));
}

const uidOf = (object: Json): string | undefined => {
  const metadata = ObjectMeta.safeParse(object.metadata);
  return metadata.success ? metadata.data.uid : undefined;
};

const resourceVersionOf = (object: unknown): string | undefined => {
  const metadata = (object as { metadata?: { resourceVersion?: unknown } } | undefined)?.metadata;
  return typeof metadata?.resourceVersion === 'string' ? metadata.resourceVersion : undefined;
};

/** One ModelCanary, its events and its route, through client-node. */
class Reader {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(kubeConfig: KubeConfig, namespace: string, name: string) {
    this.kubeConfig = kubeConfig;
    this.namespace = namespace;
    this.name = name;
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  get eventSelector(): string {
    return `involvedObject.kind=${KIND},involvedObject.name=${this.name}`;
  }

  get missing(): string {
    return `no ModelCanary "${this.name}" in namespace "${this.namespace}" (kubectl get mcan -n ${this.namespace} lists them)`;
  }

  async get(signal?: AbortSignal): Promise<{ object: Json } | { problem: string }> {
    try {
      return { object: (await this.custom.getNamespacedCustomObject({ ...RESOURCE, namespace: this.namespace, name: this.name }, withSignal(signal))) as Json };
    } catch (error) {
      if (notServed(error)) return { problem: CRD_MISSING };
      if (error instanceof ApiException && error.code === 404) return { problem: this.missing };
      return { problem: kubeProblem(error, this.kubeConfig.getCurrentCluster()?.server) };
    }
  }

  async listCanary(signal: AbortSignal): Promise<{ items: unknown[]; resourceVersion: string | undefined }> {
    const list = (await this.custom.listNamespacedCustomObject({ ...RESOURCE, namespace: this.namespace, fieldSelector: `metadata.name=${this.name}` }, withSignal(signal))) as {
      items?: unknown[];
      metadata?: { resourceVersion?: string };
    };
    return { items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion };
  }

  async listEvents(signal?: AbortSignal): Promise<{ items: unknown[]; resourceVersion: string | undefined }> {
    const list = await this.core.listNamespacedEvent({ namespace: this.namespace, fieldSelector: this.eventSelector }, withSignal(signal));
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion };
  }

  /** The weights on the route, or why they cannot be told; undefined when the spec is invalid (the view says so). */
  async route(object: Json, spec: ModelCanarySpec | undefined, signal?: AbortSignal): Promise<RouteWeight | undefined> {
    if (spec === undefined) return undefined;
    const metadata = ObjectMeta.safeParse(object.metadata);
    if (!metadata.success) return { problem: 'the object has no readable metadata' };
    const status = ModelCanaryStatus.safeParse(object.status ?? {});
    const canary: ModelCanary = { apiVersion: API_VERSION, kind: KIND, metadata: metadata.data, spec };
    try {
      const state = await createRouter(canary, new KubeObjectStore(this.kubeConfig)).inspect(intentOf(spec, status.success ? status.data : {}), signal);
      return state.ok ? { canary: state.found.canary, stable: state.found.stable } : { problem: state.problem };
    } catch (error) {
      return { problem: kubeProblem(error) };
    }
  }

  /** Everything the view shows, read once. */
  async view(object: Json, signal?: AbortSignal): Promise<StatusView> {
    const checked = specOf(object);
    const [routeWeight, events] = await Promise.all([
      this.route(object, checked.spec, signal),
      this.listEvents(signal).then(
        (list) => ({ events: eventsFor(list.items.flatMap((e) => eventOf(e) ?? []), uidOf(object)) }),
        (error: unknown) => ({ events: [], eventsProblem: kubeProblem(error) }),
      ),
    ]);
    return { object, ...checked, routeWeight, ...events };
  }
}

/** The spec, or what is wrong with it (its first problems, as `modelcanary validate` words them). */
function specOf(object: Json): Pick<StatusView, 'spec' | 'specProblems'> {
  const checked = checkAgainst(ModelCanarySpec, object.spec);
  if (checked.ok) return { spec: checked.value, specProblems: undefined };
  const shown = checked.problems.slice(0, 3).map((p) => `${p.path === '(document)' ? 'spec' : `spec.${p.path}`}: ${p.message}`);
  const more = checked.problems.length > shown.length ? ` (and ${checked.problems.length - shown.length} more)` : '';
  return { spec: undefined, specProblems: `${shown.join('; ')}${more}` };
}

// ── Drawing ─────────────────────────────────────────────────────────────────────────────

interface Screen {
  io: Io;
  output: Output;
  tty: boolean;
  color: boolean;
  columns: () => number;
  rows: () => number;
  now: () => Date;
}

function machineDocument(view: StatusView, now: Date): Json {
  return { ...view.object, summary: summaryOf(view, now) };
}

function serialize(screen: Screen, view: StatusView, first: boolean): string {
  const doc = machineDocument(view, screen.now());
  if (screen.output === 'json') return `${JSON.stringify(doc, null, 2)}\n`;
  return `${first ? '' : '---\n'}${stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}

function oneShot(screen: Screen, view: StatusView): string {
  if (screen.output !== 'view') return serialize(screen, view, true);
  return renderStatus(view, { now: screen.now(), color: screen.color, width: screen.columns() });
}

/** Draws frames: in place on a terminal; otherwise a new block only when what it shows changed. */
class Painter {
  private readonly screen: Screen;
  private lastKey: string | undefined;
  private lastFrame: string | undefined;

  constructor(screen: Screen) {
    this.screen = screen;
  }

  draw(view: StatusView): void {
    const { screen } = this;
    const now = screen.now();
    if (screen.output !== 'view') {
      const key = JSON.stringify([view.object, view.routeWeight]);
      if (key !== this.lastKey) screen.io.stdout.write(serialize(screen, view, this.lastKey === undefined));
      this.lastKey = key;
      return;
    }
    if (!screen.tty) {
      // The text without ages tells a change of the rollout from the passing of time.
      const key = renderStatus(view, { now, color: false, width: Infinity, ages: false });
      if (key === this.lastKey) return;
      screen.io.stdout.write(`${this.lastKey === undefined ? '' : '\n'}--- ${stamp(now)}\n${renderStatus(view, { now, color: false, width: Infinity })}`);
      this.lastKey = key;
      return;
    }
    // One column short of the width: a line that fills it leaves the cursor waiting to wrap,
    // where the clear-to-end-of-line that follows would erase its last character.
    const lines = renderStatus(view, { now, color: screen.color, width: screen.columns() - 1 }).trimEnd().split('\n');
    const rows = screen.rows();
    const shown = lines.length < rows ? lines : [...lines.slice(0, Math.max(rows - 2, 1)), '…'];
    // Home, each line over the last frame's with the rest of it cleared, then the rest of the screen:
    // no blank frame between two, so no flicker.
    const frame = `${shown.map((line) => `${line}\x1b[K`).join('\n')}\n\x1b[J`;
    if (frame === this.lastFrame) return;
    screen.io.stdout.write(`${this.lastFrame === undefined ? '\x1b[H\x1b[2J' : '\x1b[H'}${frame}`);
    this.lastFrame = frame;
  }
}

function stamp(now: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  const offset = -now.getTimezoneOffset();
  const zone = `${offset >= 0 ? '+' : '-'}${two(Math.floor(Math.abs(offset) / 60))}:${two(Math.abs(offset) % 60)}`;
  return `${now.getFullYear()}-${two(now.getMonth() + 1)}-${two(now.getDate())} ${two(now.getHours())}:${two(now.getMinutes())}:${two(now.getSeconds())} ${zone}`;
}

// ── Watching ────────────────────────────────────────────────────────────────────────────

async function watchStatus(reader: Reader, screen: Screen, initial: StatusView, options: { keep: boolean; signal: AbortSignal; tickMs: number }): Promise<number> {
  const painter = new Painter(screen);
  const state = { view: initial, events: new Map<string, HeldEvent>() };
  painter.draw(state.view);
  if (!options.keep && rolloutEnded(initial.object)) return endCode(initial.object);

  const stop = new AbortController();
  const signal = AbortSignal.any([options.signal, stop.signal]);
  const stopped = (): boolean => signal.aborted;
  const troubles = new Map<string, string>();
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => {
    // Resolved before the abort: the abort's own listener would end it with 0.
    finish = (code) => {
      resolve(code);
      stop.abort();
    };
  });
  signal.addEventListener('abort', () => {
    finish(EXIT.ok);
  });

  let drawPending = false;
  const redraw = (): void => {
    if (drawPending || signal.aborted) return;
    drawPending = true;
    setImmediate(() => {
      drawPending = false;
      if (!signal.aborted) painter.draw(state.view);
    });
  };
  const setView = (changes: Partial<StatusView>): void => {
    state.view = { ...state.view, ...changes };
  };
  // Events that could not be listed again are still shown: the line about the object says it is out of date.
  const showEvents = (): void => {
    setView({ events: eventsFor(state.events.values(), uidOf(state.view.object)), eventsProblem: state.events.size === 0 ? troubles.get('events') : undefined });
  };
  const trouble = (feed: string, problem: string | undefined): void => {
    if (problem === undefined) troubles.delete(feed);
    else troubles.set(feed, problem);
    const canary = troubles.get('canary');
    setView({ stale: canary === undefined ? undefined : `${canary} (retrying)` });
    if (feed === 'events') showEvents();
    redraw();
  };

  // One route read at a time; a change during one asks for another after it.
  let routeBusy = false;
  let routeAgain = false;
  const askedAgain = (): boolean => routeAgain;
  const refresh = async (): Promise<void> => {
    if (routeBusy) {
      routeAgain = true;
      return;
    }
    routeBusy = true;
    try {
      do {
        routeAgain = false;
        const object = state.view.object;
        const routeWeight = await reader.route(object, state.view.spec, AbortSignal.any([signal, AbortSignal.timeout(ROUTE_TIMEOUT_MS)]));
        if (stopped()) return;
        setView({ routeWeight });
        if (!options.keep && rolloutEnded(state.view.object) && state.view.object === object) {
          // The final frame: the event of the end is recorded just after the status that
          // announces it, so the watch gives it a moment to arrive, then ends.
          redraw();
          await new Promise((resolve) => setTimeout(resolve, FINAL_EVENTS_MS));
          if (stopped()) return;
          painter.draw(state.view);
          finish(endCode(object));
          return;
        }
        redraw();
      } while (askedAgain());
    } finally {
      routeBusy = false;
    }
  };

  const onObject = (object: Json): void => {
    setView({ object, ...specOf(object) });
    showEvents();
    redraw();
    void refresh();
  };

  const watch = new Watch(reader.kubeConfig);
  const base = `/apis/${GROUP}/${VERSION}/namespaces/${reader.namespace}/${PLURAL}`;
  const feeds = [
    follow(
      watch,
      {
        list: (s) => reader.listCanary(s),
        path: base,
        query: { fieldSelector: `metadata.name=${reader.name}` },
        reset: (items) => {
          const object = items[0] as Json | undefined;
          if (object === undefined) deleted();
          else if (resourceVersionOf(object) !== resourceVersionOf(state.view.object)) onObject(object);
        },
        change: (type, object) => {
          if (type === 'DELETED') deleted();
          else onObject(object as Json);
        },
        trouble: (problem) => {
          trouble('canary', problem);
        },
      },
      signal,
      screen.now,
    ),
    follow(
      watch,
      {
        list: (s) => reader.listEvents(s),
        path: `/api/v1/namespaces/${reader.namespace}/events`,
        query: { fieldSelector: reader.eventSelector },
        reset: (items) => {
          state.events = new Map(items.flatMap((raw) => eventOf(raw) ?? []).map((e) => [e.key, e]));
          showEvents();
          redraw();
        },
        change: (type, raw) => {
          const event = eventOf(raw);
          if (event === undefined) return;
          if (type === 'DELETED') state.events.delete(event.key);
          else state.events.set(event.key, event);
          showEvents();
          redraw();
        },
        trouble: (problem) => {
          trouble('events', problem);
        },
      },
      signal,
      screen.now,
    ),
  ];
  function deleted(): void {
    screen.io.stderr.write(`modelcanary status: ModelCanary "${reader.name}" in namespace "${reader.namespace}" was deleted\n`);
    finish(EXIT.unreadable);
  }

  const ticker = setInterval(redraw, options.tickMs);
  const router = setInterval(() => void refresh(), ROUTE_EVERY_MS);
  try {
    return await finished;
  } finally {
    clearInterval(ticker);
    clearInterval(router);
    stop.abort();
    await Promise.allSettled(feeds);
  }
}

/** How a watch that saw the end exits: 0 promoted, 1 rolled back. */
function endCode(object: Json): number {
  const status = ModelCanaryStatus.safeParse(object.status ?? {});
  return status.success && status.data.phase === 'RolledBack' ? EXIT.invalid : EXIT.ok;
}

interface Feed {
  /** The items as they are, and the resourceVersion to watch from. */
  list(signal: AbortSignal): Promise<{ items: unknown[]; resourceVersion: string | undefined }>;
  path: string;
  query: Record<string, string>;
  reset(items: unknown[]): void;
  change(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: unknown): void;
  /** What stops the feed, or undefined once it works again. */
  trouble(problem: string | undefined): void;
}

type Outcome = { kind: 'closed'; events: number } | { kind: 'expired' } | { kind: 'failed' };

/**
 * List, then watch from the list's resourceVersion, resuming from the last version seen when the
 * server ends the watch; list again when the version has expired (410) and after an error, waiting
 * 1 s, 2 s, 4 s… up to 30 s between attempts that keep failing.
 */
async function follow(watch: Watch, feed: Feed, signal: AbortSignal, now: () => Date): Promise<void> {
  // A function, not the property: TypeScript would take signal.aborted as still false after an await.
  const stopped = (): boolean => signal.aborted;
  let failures = 0;
  const backoff = (): Promise<void> => pause(Math.min(1000 * 2 ** failures++, MAX_BACKOFF_MS), signal);
  while (!stopped()) {
    let version: string | undefined;
    try {
      const listed = await feed.list(signal);
      version = listed.resourceVersion;
      feed.reset(listed.items);
      feed.trouble(undefined);
    } catch (error) {
      if (stopped()) return;
      feed.trouble(kubeProblem(error));
      await backoff();
      continue;
    }
    for (;;) {
      const started = now().getTime();
      const outcome = await watchOnce(watch, feed, version, signal, (v) => (version = v));
      if (stopped()) return;
      if (outcome.kind === 'expired') break;
      // A broken watch is not shown: the list after the pause says whether reading still works.
      if (outcome.kind === 'failed') {
        await backoff();
        break;
      }
      // A server that closes watches at once would have us spin: back off unless this one lived.
      if (outcome.events > 0 || now().getTime() - started >= 5000) failures = 0;
      else await backoff();
      if (stopped()) return;
    }
  }
}

function watchOnce(watch: Watch, feed: Feed, version: string | undefined, signal: AbortSignal, seen: (version: string) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    let outcome: Outcome = { kind: 'closed', events: 0 };
    let request: AbortController | undefined;
    let settled = false;
    const stop = (): void => request?.abort();
    const settle = (result: Outcome): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', stop);
      resolve(result);
    };
    signal.addEventListener('abort', stop, { once: true });
    const query = { ...feed.query, allowWatchBookmarks: true, ...(version === undefined ? {} : { resourceVersion: version }) };
    watch
      .watch(
        feed.path,
        query,
        (type: string, object: unknown) => {
          if (type === 'ERROR') {
            const code = (object as { code?: unknown } | undefined)?.code;
            outcome = code === 410 ? { kind: 'expired' } : { kind: 'failed' };
            request?.abort();
            return;
          }
          const v = resourceVersionOf(object);
          if (v !== undefined) seen(v);
          if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
            if (outcome.kind === 'closed') outcome = { kind: 'closed', events: outcome.events + 1 };
            feed.change(type, object);
          }
        },
        (error: unknown) => {
          // The server's end of a watch, and client-node's 30 s inactivity timeout, are not failures: resume.
          const quiet = error === null || error === undefined || (error as { name?: unknown }).name === 'TimeoutError' || (error as { name?: unknown }).name === 'AbortError';
          settle(outcome.kind !== 'closed' || signal.aborted || quiet ? outcome : { kind: 'failed' });
        },
      )
      .then(
        (controller) => {
          request = controller;
          if (signal.aborted || settled) controller.abort();
        },
        () => {
          settle({ kind: 'failed' });
        },
      );
  });
}
