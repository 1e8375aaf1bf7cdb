// The HTTP face of the sandbox: Kubernetes API paths, verbs, query parameters, content
// negotiation (JSON, YAML, Table, PartialObjectMetadata), Status errors and warning headers,
// mapped onto the cluster's operations. Faults are applied here, before a request reaches them.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { groupVersion, type Cluster, type DeleteOptions, type FieldValidation, type ListQuery, type Target, type WriteOptions, type WriteResult } from './cluster.ts';
import type { FaultState } from './faults.ts';
import { isObject, type JsonObject } from './json.ts';
import { groupVersionDocument, openApiRoot } from './openapi.ts';
import { decodeProtobuf, PROTOBUF } from './protobuf.ts';
import type { ResourceType } from './registry.ts';
import { ApiError, badRequest, conflict, internalError, methodNotAllowed, pathNotFound, tooLarge, type Status } from './status.ts';
import type { KubeObject } from './store.ts';
import { partialObjectMetadata, toTable, type IncludeObject } from './table.ts';
import type { Watches } from './watch.ts';

/** The server version reported at /version: the minor release the installed kubectl expects. */
export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-modelcanary-sandbox',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23.4',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const BODY_LIMIT = 3 * 1024 * 1024;

export interface ServerContext {
  cluster: Cluster;
  watches: Watches;
  faults: FaultState;
  now: () => Date;
}

interface Reply {
  code: number;
  body: unknown;
  contentType?: string;
  warnings?: string[];
}

type Representation =
  | { as: 'object'; contentType: string; yaml: boolean }
  | { as: 'Table'; contentType: string; version: string }
  | { as: 'PartialObjectMetadata'; contentType: string; version: string };

export function createHandler(context: ServerContext): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    handle(context, request, response).catch((error: unknown) => {
      if (!response.headersSent) send(response, statusReply(internalError(error instanceof Error ? error.message : String(error)).status));
      else response.destroy();
    });
  };
}

async function handle(context: ServerContext, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const latency = context.faults.latencyMs();
  if (latency > 0) await sleep(latency);
  const url = new URL(request.url ?? '/', 'http://sandbox.invalid');
  try {
    const reply = await route(context, request, response, url);
    if (reply !== undefined) send(response, reply);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (response.headersSent) response.end();
    else send(response, statusReply(error.status));
  }
}

/** Answers the request; undefined when it was answered as a stream. */
async function route(context: ServerContext, request: IncomingMessage, response: ServerResponse, url: URL): Promise<Reply | undefined> {
  const segments = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  const { registry } = context.cluster;
  const [root, second, third] = segments;

  switch (root) {
    case 'healthz':
    case 'livez':
    case 'readyz':
      return { code: 200, body: 'ok', contentType: 'text/plain; charset=utf-8' };
    case 'version':
      return { code: 200, body: SERVER_VERSION };
    case 'api':
      if (segments.length === 1) return { code: 200, body: registry.apiVersions(request.headers.host ?? '127.0.0.1') };
      if (segments.length === 2) return discovery(registry.resourceList('', second ?? ''));
      return resourceRequest(context, request, response, url, '', second ?? '', segments.slice(2));
    case 'apis':
      if (segments.length === 1) return { code: 200, body: registry.apiGroupList() };
      if (segments.length === 2) return discovery(registry.apiGroup(second ?? ''));
      if (segments.length === 3) return discovery(registry.resourceList(second ?? '', third ?? ''));
      return resourceRequest(context, request, response, url, second ?? '', third ?? '', segments.slice(3));
    case 'openapi':
      // Only v3: kubectl prefers it, and a 404 at /openapi/v2 is what it expects of a v3 server.
      if (second !== 'v3') throw pathNotFound();
      if (segments.length === 2) return { code: 200, body: openApiRoot(registry) };
      return discovery(segments[2] === 'api' ? groupVersionDocument(registry, '', segments[3] ?? '') : groupVersionDocument(registry, segments[3] ?? '', segments[4] ?? ''));
    default:
      throw pathNotFound();
  }
}

function discovery(document: JsonObject | undefined): Reply {
  if (document === undefined) throw pathNotFound();
  return { code: 200, body: document };
}

async function resourceRequest(
  context: ServerContext,
  request: IncomingMessage,
  response: ServerResponse,
  url: URL,
  group: string,
  version: string,
  rest: string[],
): Promise<Reply | undefined> {
  const { cluster } = context;
  const query = url.searchParams;
  let parts = rest;
  let watch = query.get('watch') === 'true' || query.get('watch') === '1';
  // The deprecated /watch/ path prefix, still accepted by real servers.
  if (parts[0] === 'watch') {
    watch = true;
    parts = parts.slice(1);
  }
  const target = parseTarget(cluster, group, version, parts);
  const method = request.method ?? 'GET';

  if (method === 'GET') {
    const representation = negotiate(request.headers.accept);
    if (watch) {
      serveWatch(context, response, target, query, representation);
      return undefined;
    }
    if (target.name !== undefined) return render(context, target, [cluster.get(target)], representation, undefined);
    const result = cluster.list(target, listQuery(query));
    return render(context, target, result.items, representation, result);
  }

  const failure = context.faults.takeWriteFailure();
  const body = await readBody(request);
  if (failure !== undefined) {
    const name = target.name ?? nameInBody(body) ?? '';
    throw failure === 409 ? conflict(target.type, name) : internalError(`injected failure writing ${target.type.plural} "${name}"`);
  }
  const options = writeOptions(query);
  switch (method) {
    case 'POST':
      return written(cluster.create(target, decodeBody(request, body), options));
    case 'PUT':
      return written(cluster.update(target, decodeBody(request, body), options));
    case 'PATCH':
      return written(cluster.patch(target, mediaType(request.headers['content-type']), body.toString('utf8'), options));
    case 'DELETE': {
      const deleteOptions = parseDeleteOptions(request, body, query);
      if (target.name === undefined) return { code: 200, body: cluster.deleteCollection(target, listQuery(query), deleteOptions.options, deleteOptions.dryRun || options.dryRun) };
      return written(cluster.delete(target, deleteOptions.options, deleteOptions.dryRun || options.dryRun));
    }
    default:
      throw methodNotAllowed(method);
  }
}

function parseTarget(cluster: Cluster, group: string, version: string, parts: string[]): Target {
  let namespace: string | undefined;
  let resource: string | undefined;
  let name: string | undefined;
  let subresource: string | undefined;
  let extra: string[];
  const namespaceSubresource = parts[0] === 'namespaces' && parts.length === 3 && (parts[2] === 'status' || parts[2] === 'finalize');
  if (parts[0] === 'namespaces' && parts.length >= 3 && !namespaceSubresource) {
    [, namespace, resource, name, subresource, ...extra] = parts;
  } else {
    [resource, name, subresource, ...extra] = parts;
  }
  const type = resource === undefined ? undefined : cluster.registry.find(group, version, resource);
  if (type === undefined || extra.length > 0) throw pathNotFound();
  if (namespace !== undefined && !type.namespaced) throw pathNotFound();
  if (namespace === undefined && type.namespaced && name !== undefined) throw pathNotFound();
  if (subresource !== undefined && !(subresource === 'status' && type.statusSubresource)) throw pathNotFound();
  return { type, namespace, name, subresource: subresource === 'status' ? 'status' : undefined };
}

function listQuery(query: URLSearchParams): ListQuery {
  const limit = query.get('limit');
  const parsed = limit === null || limit === '' ? undefined : Number(limit);
  if (parsed !== undefined && !(Number.isInteger(parsed) && parsed >= 0)) throw badRequest(`limit: Invalid value: "${limit ?? ''}": must be a non-negative integer`);
  const continueToken = query.get('continue');
  return {
    labelSelector: query.get('labelSelector'),
    fieldSelector: query.get('fieldSelector'),
    limit: parsed,
    continueToken: continueToken === null || continueToken === '' ? undefined : continueToken,
  };
}

function writeOptions(query: URLSearchParams): WriteOptions {
  const validation = query.get('fieldValidation') ?? 'Warn';
  if (validation !== 'Strict' && validation !== 'Warn' && validation !== 'Ignore') {
    throw badRequest(`fieldValidation: Unsupported value: "${validation}": supported values: "Ignore", "Strict", "Warn"`);
  }
  const dryRun = query.getAll('dryRun');
  if (dryRun.some((d) => d !== 'All')) throw badRequest(`dryRun: Unsupported value: "${dryRun.join(',')}": supported values: "All"`);
  return { dryRun: dryRun.length > 0, fieldValidation: validation satisfies FieldValidation, fieldManager: query.get('fieldManager') ?? undefined };
}

function parseDeleteOptions(request: IncomingMessage, body: Buffer, query: URLSearchParams): { options: DeleteOptions; dryRun: boolean } {
  let raw: unknown = {};
  if (mediaType(request.headers['content-type']) === PROTOBUF) {
    // kubectl's typed clients send DeleteOptions as protobuf; what matters of them is in the query too.
    raw = {};
  } else if (body.toString('utf8').trim() !== '') {
    try {
      raw = JSON.parse(body.toString('utf8')) as unknown;
    } catch (error) {
      throw badRequest(`error decoding DeleteOptions: ${(error as Error).message}`);
    }
  }
  const options: DeleteOptions = {};
  if (isObject(raw) && isObject(raw.preconditions)) {
    const { uid, resourceVersion } = raw.preconditions;
    options.preconditions = {
      ...(typeof uid === 'string' ? { uid } : {}),
      ...(typeof resourceVersion === 'string' ? { resourceVersion } : {}),
    };
  }
  const dryRun = (isObject(raw) && Array.isArray(raw.dryRun) && raw.dryRun.includes('All')) || query.getAll('dryRun').includes('All');
  return { options, dryRun };
}

function written(result: WriteResult): Reply {
  return { code: result.code, body: result.body, warnings: result.warnings };
}

function serveWatch(context: ServerContext, response: ServerResponse, target: Target, query: URLSearchParams, representation: Representation): void {
  const { cluster } = context;
  const fieldSelector = target.name === undefined ? query.get('fieldSelector') : [`metadata.name=${target.name}`, query.get('fieldSelector')].filter((s) => s !== null && s !== '').join(',');
  const matches = cluster.matcher({ ...target, name: undefined }, query.get('labelSelector'), fieldSelector);
  const resourceVersion = query.get('resourceVersion');
  if (resourceVersion !== null && resourceVersion !== '' && !/^\d+$/.test(resourceVersion)) {
    throw badRequest(`resourceVersion: Invalid value: "${resourceVersion}": must be an integer`);
  }
  const timeout = query.get('timeoutSeconds');
  const type = target.type;
  const encode = (object: KubeObject): unknown => {
    const external = cluster.externalize(type, object);
    switch (representation.as) {
      case 'object':
        return external;
      case 'Table':
        return tableFor(context, type, [external], representation.version, includeObject(query), String(cluster.store.currentRevision()));
      case 'PartialObjectMetadata':
        return { ...partialObjectMetadata(external), apiVersion: `meta.k8s.io/${representation.version}` };
    }
  };
  context.watches.serve(response, {
    target,
    resourceVersion,
    sendInitialEvents: query.get('sendInitialEvents') === 'true',
    allowBookmarks: query.get('allowWatchBookmarks') === 'true',
    timeoutSeconds: timeout === null ? undefined : Number(timeout),
    matches,
    encode,
    bookmark: (rv, annotations) => ({ kind: type.kind, apiVersion: groupVersion(type), metadata: { resourceVersion: rv, ...(annotations === undefined ? {} : { annotations }) } }),
    contentType: representation.as === 'object' ? 'application/json' : representation.contentType,
  });
}

function render(context: ServerContext, target: Target, objects: KubeObject[], representation: Representation, list: ReturnType<Cluster['list']> | undefined): Reply {
  const { cluster } = context;
  const type = target.type;
  const resourceVersion = list?.resourceVersion ?? objects[0]?.metadata.resourceVersion ?? String(cluster.store.currentRevision());
  switch (representation.as) {
    case 'Table': {
      const table = tableFor(context, type, objects, representation.version, 'Metadata', resourceVersion, list);
      return { code: 200, body: table, contentType: representation.contentType };
    }
    case 'PartialObjectMetadata': {
      const apiVersion = `meta.k8s.io/${representation.version}`;
      const partial = objects.map((o) => ({ ...partialObjectMetadata(o), apiVersion }));
      const body = list === undefined ? partial[0] : { kind: 'PartialObjectMetadataList', apiVersion, metadata: { resourceVersion }, items: partial };
      return { code: 200, body, contentType: representation.contentType };
    }
    case 'object': {
      const body = list === undefined ? objects[0] : cluster.listBody(type, list);
      return representation.yaml ? { code: 200, body: stringifyYaml(body), contentType: 'application/yaml' } : { code: 200, body };
    }
  }
}

function tableFor(
  context: ServerContext,
  type: ResourceType,
  objects: KubeObject[],
  version: string,
  include: IncludeObject,
  resourceVersion: string,
  list?: ReturnType<Cluster['list']>,
): unknown {
  const table = toTable(objects, {
    columns: type.printerColumns,
    includeObject: include,
    resourceVersion,
    ...(list?.continueToken === undefined ? {} : { continueToken: list.continueToken }),
    ...(list?.remainingItemCount === undefined ? {} : { remainingItemCount: list.remainingItemCount }),
    now: context.now(),
  });
  return { ...table, apiVersion: `meta.k8s.io/${version}` };
}

function includeObject(query: URLSearchParams): IncludeObject {
  const value = query.get('includeObject');
  return value === 'None' || value === 'Object' ? value : 'Metadata';
}

/** Picks the first representation in the Accept header that the sandbox can produce. */
export function negotiate(accept: string | undefined): Representation {
  if (accept === undefined || accept.trim() === '') return { as: 'object', contentType: 'application/json', yaml: false };
  for (const entry of accept.split(',')) {
    const [rawType = '', ...rawParams] = entry.split(';').map((s) => s.trim());
    const type = rawType.toLowerCase();
    const params = new Map(rawParams.map((p) => p.split('=').map((s) => s.trim()) as [string, string]));
    const as = params.get('as');
    const metaGroup = params.get('g') === 'meta.k8s.io';
    const version = params.get('v') ?? 'v1';
    if (type === 'application/json' || type === '*/*' || type === 'application/*') {
      if (as === undefined) return { as: 'object', contentType: 'application/json', yaml: false };
      if (as === 'Table' && metaGroup && (version === 'v1' || version === 'v1beta1')) {
        return { as: 'Table', version, contentType: `application/json;as=Table;v=${version};g=meta.k8s.io` };
      }
      if ((as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') && metaGroup && (version === 'v1' || version === 'v1beta1')) {
        return { as: 'PartialObjectMetadata', version, contentType: `application/json;as=${as};v=${version};g=meta.k8s.io` };
      }
    }
    if (type === 'application/yaml' && as === undefined) return { as: 'object', contentType: 'application/yaml', yaml: true };
  }
  throw new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io`,
    reason: 'NotAcceptable',
    code: 406,
  });
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

function decodeBody(request: IncomingMessage, body: Buffer): unknown {
  const type = mediaType(request.headers['content-type']);
  if (type === PROTOBUF) return decodeProtobuf(body);
  try {
    if (type === 'application/yaml') return parseYaml(body.toString('utf8')) as unknown;
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (error) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(error as Error).message}`);
  }
}

function nameInBody(body: Buffer): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    return isObject(parsed) && isObject(parsed.metadata) && typeof parsed.metadata.name === 'string' ? parsed.metadata.name : undefined;
  } catch {
    return undefined;
  }
}

function statusReply(status: Status): Reply {
  return { code: status.code, body: status };
}

function send(response: ServerResponse, reply: Reply): void {
  const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
  const headers: Record<string, string | string[]> = {
    'Content-Type': reply.contentType ?? 'application/json',
    'Cache-Control': 'no-cache, private',
    'Content-Length': String(Buffer.byteLength(text)),
  };
  if (reply.warnings !== undefined && reply.warnings.length > 0) {
    headers.Warning = reply.warnings.map((w) => `299 - "${w.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
  }
  response.writeHead(reply.code, headers);
  response.end(text);
}
