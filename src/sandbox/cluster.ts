// The REST semantics of a Kubernetes API server over the in-memory store: create, read, update,
// patch and delete with the rules controllers depend on — resourceVersion preconditions and 409
// Conflict, the status subresource, metadata.generation, finalizers and deletionTimestamp,
// structural-schema pruning, defaulting and validation, namespaces that must exist, and CRDs
// that start and stop serving their kinds. HTTP is server.ts's job; this file sees only values.

import { randomInt, randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import type { SchemaNode } from '../api/crd.ts';
import { CUSTOM_RESOURCE_DEFINITIONS, NAMESPACES, OBJECT_META } from './builtins.ts';
import { clone, deepEqual, describeValue, isObject, type JsonObject } from './json.ts';
import { jsonPatch, mergePatch } from './patch.ts';
import { typesFromCrd, type Registry, type ResourceType } from './registry.ts';
import { applyDefaults, prune, validate, type FieldIssue } from './schema.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import {
  alreadyExists,
  ApiError,
  badRequest,
  conflict,
  forbidden,
  internalError,
  invalid,
  methodNotAllowed,
  notFound,
  success,
  unsupportedMediaType,
  type StatusCause,
} from './status.ts';
import { asKubeObject, type KubeObject, type Metadata, type Store } from './store.ts';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  dryRun: boolean;
  fieldValidation: FieldValidation;
  fieldManager: string | undefined;
}

export interface Target {
  type: ResourceType;
  namespace: string | undefined;
  name: string | undefined;
  subresource: 'status' | undefined;
}

export interface WriteResult {
  code: number;
  body: unknown;
  warnings: string[];
}

export interface ListQuery {
  labelSelector: string | null;
  fieldSelector: string | null;
  limit: number | undefined;
  continueToken: string | undefined;
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
  continueToken?: string;
  remainingItemCount?: number;
}

export interface DeleteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
}

export const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'];
const CUSTOM_PATCH_TYPES = PATCH_TYPES.filter((t) => !t.startsWith('application/strategic'));

/** Namespaces every cluster has; the first two cannot be deleted. */
export const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
const UNDELETABLE_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);

const DNS1123_SUBDOMAIN = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
const DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const LABEL_VALUE = '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?';
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const GENERATED_SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export function rfc3339(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function groupVersion(type: ResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

export class Cluster {
  readonly store: Store;
  readonly registry: Registry;
  private readonly now: () => Date;

  constructor(store: Store, registry: Registry, now: () => Date) {
    this.store = store;
    this.registry = registry;
    this.now = now;
  }

  /**
   * The object as served at the target's version: apiVersion and kind first, as the API server
   * writes them. A custom resource is a map on the real server, written with every key sorted
   * at every level (so the order a client wrote is not the order it reads back).
   */
  externalize(type: ResourceType, object: KubeObject): KubeObject {
    const { apiVersion: _apiVersion, kind: _kind, ...rest } = type.fromStorage?.(object) ?? object;
    const served = { apiVersion: groupVersion(type), kind: type.kind, ...rest };
    return type.custom ? (sortKeys(served) as KubeObject) : served;
  }

  get(target: Target): KubeObject {
    return this.externalize(target.type, this.existing(target));
  }

  list(target: Target, query: ListQuery): ListResult {
    const matches = this.matcher(target, query.labelSelector, query.fieldSelector);
    let after: string | undefined;
    let resourceVersion = String(this.store.currentRevision());
    if (query.continueToken !== undefined) {
      const token = decodeContinue(query.continueToken);
      after = token.start;
      resourceVersion = token.rv;
    }
    const all = this.store.list(target.type.storage, target.namespace).filter(matches);
    const key = (o: KubeObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;
    const start = after;
    const remaining = start === undefined ? all : all.filter((o) => key(o) > start);
    const limit = query.limit !== undefined && query.limit > 0 ? query.limit : remaining.length;
    const page = remaining.slice(0, limit);
    const last = page.at(-1);
    const result: ListResult = { items: page.map((o) => this.externalize(target.type, o)), resourceVersion };
    if (remaining.length > page.length && last !== undefined) {
      result.continueToken = encodeContinue(resourceVersion, key(last));
      if (query.labelSelector === null && query.fieldSelector === null) result.remainingItemCount = remaining.length - page.length;
    }
    return result;
  }

  /** The List object; items of built-in kinds carry no kind or apiVersion, as from a real server. */
  listBody(type: ResourceType, result: ListResult): JsonObject {
    return {
      apiVersion: groupVersion(type),
      kind: type.listKind,
      metadata: {
        resourceVersion: result.resourceVersion,
        ...(result.continueToken === undefined ? {} : { continue: result.continueToken }),
        ...(result.remainingItemCount === undefined ? {} : { remainingItemCount: result.remainingItemCount }),
      },
      items: type.custom ? result.items : result.items.map(({ apiVersion: _a, kind: _k, ...rest }) => rest),
    };
  }

  /** Whether an object is in the target's namespace and matches the selectors; throws 400 on a bad selector. */
  matcher(target: Target, labelSelector: string | null, fieldSelector: string | null): (object: KubeObject) => boolean {
    const labels = parseLabelSelector(labelSelector);
    const fields = parseFieldSelector(fieldSelector).map((requirement) => {
      const read = this.fieldReader(target.type, requirement.field);
      return (o: KubeObject): boolean => (read(o) === requirement.value) === requirement.equal;
    });
    return (object) =>
      (target.namespace === undefined || object.metadata.namespace === target.namespace) && labels(object.metadata.labels) && fields.every((f) => f(object));
  }

  private fieldReader(type: ResourceType, field: string): (o: KubeObject) => string | undefined {
    if (field === 'metadata.name') return (o) => o.metadata.name;
    if (field === 'metadata.namespace') return (o) => o.metadata.namespace ?? '';
    const read = type.fieldSelectors[field];
    if (read !== undefined) return read;
    const known = ['metadata.name', 'metadata.namespace', ...Object.keys(type.fieldSelectors)];
    throw badRequest(
      type.custom ? `"${field}" is not a known field selector: only ${known.map((k) => `"${k}"`).join(', ')}` : `field label not supported: ${field}`,
    );
  }

  create(target: Target, body: unknown, options: WriteOptions): WriteResult {
    const { type } = target;
    if (target.name !== undefined || target.subresource !== undefined) throw methodNotAllowed('POST');
    const object = this.decode(type, body);
    const namespace = this.namespaceFor(target, object);
    if (namespace !== undefined) this.requireNamespace(namespace);
    const meta = object.metadata;
    if ((meta.name === undefined || meta.name === '') && typeof meta.generateName === 'string' && meta.generateName !== '') {
      meta.name = generateName(meta.generateName);
    }
    if (meta.name === undefined || meta.name === '') {
      throw invalid(type.kind, type.group, '', [{ field: 'metadata.name', reason: 'FieldValueRequired', message: 'Required value: name or generateName is required' }]);
    }
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '') throw internalError('resourceVersion should not be set on objects to be created');
    for (const owned of ['uid', 'resourceVersion', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields']) Reflect.deleteProperty(meta, owned);
    meta.namespace = namespace;
    if (namespace === undefined) Reflect.deleteProperty(meta, 'namespace');
    meta.uid = randomUUID();
    meta.creationTimestamp = rfc3339(this.now());
    if (type.generation) meta.generation = 1;
    else Reflect.deleteProperty(meta, 'generation');
    // With a status subresource, status is the controller's: a create cannot set it.
    if (type.statusSubresource && type.custom) Reflect.deleteProperty(object, 'status');

    const warnings = this.admit(type, object, undefined, options);
    const crdTypes = type === CUSTOM_RESOURCE_DEFINITIONS ? this.crdTypes(object) : undefined;
    if (this.store.get(type.storage, namespace, meta.name) !== undefined) throw alreadyExists(type, meta.name);
    const storable = type.toStorage?.(object) ?? object;
    if (options.dryRun) return { code: 201, body: this.externalize(type, storable), warnings };

    const stored = this.store.commit(type.storage, 'ADDED', storable);
    if (crdTypes !== undefined && stored.metadata.name !== undefined) this.registry.serve(stored.metadata.name, crdTypes);
    return { code: 201, body: this.externalize(type, stored), warnings };
  }

  update(target: Target, body: unknown, options: WriteOptions): WriteResult {
    const { type } = target;
    const name = this.requireName(target, 'PUT');
    const existing = this.existing(target);
    const object = this.decode(type, body);
    if (object.metadata.name !== undefined && object.metadata.name !== name) {
      throw badRequest(`the name of the object (${object.metadata.name}) does not match the name on the URL (${name})`);
    }
    this.namespaceFor(target, object);
    const requested = object.metadata.resourceVersion;
    if (requested === undefined || requested === '') {
      // Custom resources never allow an unconditional update; most built-in kinds do.
      if (type.custom) {
        throw invalid(type.kind, type.group, name, [{ field: 'metadata.resourceVersion', reason: 'FieldValueInvalid', message: 'Invalid value: 0x0: must be specified for an update' }]);
      }
    } else if (requested !== existing.metadata.resourceVersion) {
      throw conflict(type, name);
    }
    return this.replace(target, existing, object, options);
  }

  patch(target: Target, contentType: string, raw: string, options: WriteOptions): WriteResult {
    const { type } = target;
    const name = this.requireName(target, 'PATCH');
    const accepted = type.custom ? CUSTOM_PATCH_TYPES : PATCH_TYPES;
    if (!accepted.includes(contentType)) throw unsupportedMediaType(contentType, accepted);

    if (contentType === 'application/apply-patch+yaml') return this.apply(target, name, raw, options);
    const existing = this.existing(target);
    const patch = parseJson(raw);
    const current = this.externalize(type, existing);
    // Strategic merge patch merges lists by key; merge patch replaces them. Close enough for the
    // built-in kinds served here, none of which has a keyed list a controller patches.
    const patched = contentType === 'application/json-patch+json' ? jsonPatch(current, patch) : mergePatch(current, patch);
    if (!isObject(patched)) throw badRequest('the patch did not produce an object');
    const object = asKubeObject(patched);
    if (object.metadata.resourceVersion !== undefined && object.metadata.resourceVersion !== existing.metadata.resourceVersion) {
      throw conflict(type, name);
    }
    if (object.metadata.name !== name) throw badRequest(`the name of the object (${object.metadata.name ?? ''}) does not match the name on the URL (${name})`);
    return this.replace(target, existing, object, options);
  }

  /**
   * Server-side apply, approximated: the applied configuration is merged into the object (or
   * creates it). Field ownership, conflicts between managers and removal of fields a manager
   * stopped applying are not modelled.
   */
  private apply(target: Target, name: string, raw: string, options: WriteOptions): WriteResult {
    if (options.fieldManager === undefined || options.fieldManager === '') throw badRequest('PATCH requests with apply-patch+yaml must specify fieldManager');
    let applied: unknown;
    try {
      applied = parseYaml(raw);
    } catch (error) {
      throw badRequest(`error decoding YAML: ${(error as Error).message}`);
    }
    if (!isObject(applied)) throw badRequest('the applied configuration is not an object');
    const current = this.store.get(target.type.storage, target.namespace, name);
    if (current === undefined) {
      if (target.subresource !== undefined) throw notFound(target.type, name);
      return this.create({ ...target, name: undefined }, { ...applied, metadata: { ...(isObject(applied.metadata) ? applied.metadata : {}), name } }, options);
    }
    const merged = asKubeObject(mergePatch(this.externalize(target.type, current), applied) as JsonObject);
    merged.metadata.resourceVersion = current.metadata.resourceVersion;
    return this.replace(target, current, merged, options);
  }

  private replace(target: Target, existing: KubeObject, object: KubeObject, options: WriteOptions): WriteResult {
    const { type } = target;
    const current = type.fromStorage?.(clone(existing)) ?? existing;
    let next: KubeObject;
    if (target.subresource === 'status') {
      // A status write changes status and nothing else.
      next = clone(current);
      if (object.status === undefined) Reflect.deleteProperty(next, 'status');
      else next.status = object.status;
    } else {
      next = object;
      next.metadata = withServerOwnedMetadata(object.metadata, existing);
      for (const dropped of ['managedFields', 'generateName']) if (object.metadata[dropped] === undefined) Reflect.deleteProperty(next.metadata, dropped);
      if (type.statusSubresource) {
        // With a status subresource, the main resource cannot change status.
        if (existing.status === undefined) Reflect.deleteProperty(next, 'status');
        else next.status = clone(existing.status);
      }
    }
    Reflect.deleteProperty(next, 'apiVersion');
    Reflect.deleteProperty(next, 'kind');
    next.metadata.resourceVersion = existing.metadata.resourceVersion;

    const warnings = this.admit(type, next, existing, options);
    const name = next.metadata.name ?? '';
    if (existing.metadata.deletionTimestamp !== undefined) {
      const before = new Set(existing.metadata.finalizers ?? []);
      const added = (next.metadata.finalizers ?? []).filter((f) => !before.has(f));
      if (added.length > 0) {
        throw invalid(type.kind, type.group, name, [
          { field: 'metadata.finalizers', reason: 'FieldValueForbidden', message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}` },
        ]);
      }
    }
    if (type === CUSTOM_RESOURCE_DEFINITIONS) this.checkCrdUpdate(existing, next);
    const crdTypes = type === CUSTOM_RESOURCE_DEFINITIONS ? this.crdTypes(next) : undefined;
    const storable = type.toStorage?.(next) ?? next;
    if (type.generation && desiredStateChanged(type, existing, storable)) storable.metadata.generation = (existing.metadata.generation ?? 0) + 1;

    // A write that changes nothing is not a write: no new resourceVersion, no watch event.
    if (deepEqual(storable, existing)) return { code: 200, body: this.externalize(type, existing), warnings };
    if (options.dryRun) return { code: 200, body: this.externalize(type, storable), warnings };

    if (storable.metadata.deletionTimestamp !== undefined && (storable.metadata.finalizers ?? []).length === 0) {
      const removed = this.remove(type, storable);
      return { code: 200, body: this.externalize(type, removed), warnings };
    }
    const stored = this.store.commit(type.storage, 'MODIFIED', storable);
    if (crdTypes !== undefined) this.registry.serve(name, crdTypes);
    return { code: 200, body: this.externalize(type, stored), warnings };
  }

  delete(target: Target, options: DeleteOptions, dryRun: boolean): WriteResult {
    const { type } = target;
    const name = this.requireName(target, 'DELETE');
    if (target.subresource !== undefined) throw methodNotAllowed('DELETE');
    const existing = this.existing(target);
    const preconditions = options.preconditions ?? {};
    if (preconditions.uid !== undefined && preconditions.uid !== existing.metadata.uid) {
      throw conflict(type, name, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${existing.metadata.uid ?? ''}`);
    }
    if (preconditions.resourceVersion !== undefined && preconditions.resourceVersion !== existing.metadata.resourceVersion) {
      throw conflict(
        type,
        name,
        `the ResourceVersion in the precondition (${preconditions.resourceVersion}) does not match the ResourceVersion in record (${existing.metadata.resourceVersion ?? ''}). The object might have been modified`,
      );
    }
    if (type === NAMESPACES && UNDELETABLE_NAMESPACES.has(name)) throw forbidden(type, name, 'this namespace may not be deleted');
    if (existing.metadata.deletionTimestamp !== undefined) return { code: 200, body: this.externalize(type, existing), warnings: [] };

    const finalizers = existing.metadata.finalizers ?? [];
    if (finalizers.length > 0 || type === NAMESPACES) {
      const marked = clone(existing);
      marked.metadata.deletionTimestamp = rfc3339(this.now());
      marked.metadata.deletionGracePeriodSeconds = 0;
      if (marked.metadata.generation !== undefined) marked.metadata.generation += 1;
      if (type === NAMESPACES) marked.status = { ...(isObject(marked.status) ? marked.status : {}), phase: 'Terminating' };
      if (dryRun) return { code: 200, body: this.externalize(type, marked), warnings: [] };
      const stored = this.store.commit(type.storage, 'MODIFIED', marked);
      if (type === NAMESPACES) this.emptyNamespace(name);
      return { code: 200, body: this.externalize(type, this.store.get(type.storage, target.namespace, name) ?? stored), warnings: [] };
    }
    if (dryRun) return { code: 200, body: success(type, name, existing.metadata.uid), warnings: [] };
    this.remove(type, existing);
    return { code: 200, body: success(type, name, existing.metadata.uid), warnings: [] };
  }

  deleteCollection(target: Target, query: ListQuery, options: DeleteOptions, dryRun: boolean): JsonObject {
    const matches = this.matcher(target, query.labelSelector, query.fieldSelector);
    const removed: KubeObject[] = [];
    for (const object of this.store.list(target.type.storage, target.namespace).filter(matches)) {
      const result = this.delete({ ...target, namespace: object.metadata.namespace, name: object.metadata.name }, options, dryRun);
      if (isObject(result.body) && result.body.kind !== 'Status') removed.push(asKubeObject(result.body));
      else removed.push(this.externalize(target.type, object));
    }
    return this.listBody(target.type, { items: removed, resourceVersion: String(this.store.currentRevision()) });
  }

  /** Creates what a new cluster has: its namespaces and the given CRDs. */
  bootstrap(namespaces: string[], crds: unknown[]): void {
    const options: WriteOptions = { dryRun: false, fieldValidation: 'Strict', fieldManager: undefined };
    for (const name of new Set([...SYSTEM_NAMESPACES, ...namespaces])) {
      this.create({ type: NAMESPACES, namespace: undefined, name: undefined, subresource: undefined }, { metadata: { name } }, options);
    }
    for (const crd of crds) this.create({ type: CUSTOM_RESOURCE_DEFINITIONS, namespace: undefined, name: undefined, subresource: undefined }, clone(crd), options);
  }

  private remove(type: ResourceType, object: KubeObject): KubeObject {
    const removed = this.store.commit(type.storage, 'DELETED', object);
    if (type === CUSTOM_RESOURCE_DEFINITIONS) {
      for (const served of this.registry.stopServing(object.metadata.name ?? '')) this.store.drop(served.storage);
    }
    const namespace = object.metadata.namespace;
    if (namespace !== undefined) this.finishNamespace(namespace);
    return removed;
  }

  /** What the namespace controller does: delete everything in a terminating namespace, then the namespace. */
  private emptyNamespace(namespace: string): void {
    const storages = new Map(this.registry.all().filter((t) => t.namespaced).map((t) => [t.storage, t]));
    for (const type of storages.values()) {
      for (const object of this.store.list(type.storage, namespace)) {
        if (object.metadata.deletionTimestamp !== undefined) continue;
        this.delete({ type, namespace, name: object.metadata.name, subresource: undefined }, {}, false);
      }
    }
    this.finishNamespace(namespace);
  }

  private finishNamespace(namespace: string): void {
    const object = this.store.get(NAMESPACES.storage, undefined, namespace);
    if (object?.metadata.deletionTimestamp === undefined) return;
    const storages = new Set(this.registry.all().filter((t) => t.namespaced).map((t) => t.storage));
    for (const storage of storages) if (this.store.list(storage, namespace).length > 0) return;
    this.store.commit(NAMESPACES.storage, 'DELETED', object);
  }

  private admit(type: ResourceType, object: KubeObject, previous: KubeObject | undefined, options: WriteOptions): string[] {
    const schema = rootSchema(type);
    const unknown = prune(object, schema);
    if (unknown.length > 0 && options.fieldValidation === 'Strict') {
      throw badRequest(`${type.kind} in version "${type.version}" cannot be handled as a ${type.kind}: strict decoding error: ${unknown.map((f) => `unknown field "${f}"`).join(', ')}`);
    }
    const warnings = options.fieldValidation === 'Warn' ? unknown.map((f) => `unknown field "${f}"`) : [];
    applyDefaults(object, schema);
    const issues = [...validate(object, schema), ...metadataIssues(type, object), ...(type.check?.(object, previous) ?? [])];
    const undecodable = issues.filter((i) => i.decode && (type.typed || i.message.startsWith('parsing time')));
    if (undecodable[0] !== undefined) {
      throw badRequest(`${type.kind} in version "${type.version}" cannot be handled as a ${type.kind}: ${undecodable[0].field}: ${undecodable[0].message}`);
    }
    if (issues.length > 0) throw invalid(type.kind, type.group, object.metadata.name ?? '', issues.map(cause));
    type.prepare?.(object, previous);
    warnings.push(...finalizerWarnings(object));
    return warnings;
  }

  private crdTypes(crd: KubeObject): ResourceType[] {
    const { types, problems } = typesFromCrd(crd);
    if (problems.length > 0) throw invalid('CustomResourceDefinition', 'apiextensions.k8s.io', crd.metadata.name ?? '', problems.map(cause));
    return types;
  }

  private checkCrdUpdate(existing: KubeObject, next: KubeObject): void {
    const group = (o: KubeObject): unknown => (isObject(o.spec) ? o.spec.group : undefined);
    if (group(existing) !== group(next)) {
      throw invalid('CustomResourceDefinition', 'apiextensions.k8s.io', next.metadata.name ?? '', [{ field: 'spec.group', reason: 'FieldValueInvalid', message: 'Invalid value: field is immutable' }]);
    }
  }

  private decode(type: ResourceType, body: unknown): KubeObject {
    if (!isObject(body)) throw badRequest(`${type.kind} in version "${type.version}" cannot be handled as a ${type.kind}: the body is not a JSON object`);
    if (body.apiVersion !== undefined && body.apiVersion !== groupVersion(type)) {
      throw badRequest(`the API version in the data (${describeValue(body.apiVersion)}) does not match the expected API version (${groupVersion(type)})`);
    }
    if (body.kind !== undefined && body.kind !== type.kind) throw badRequest(`the kind in the data (${describeValue(body.kind)}) does not match the expected kind (${type.kind})`);
    if (body.metadata !== undefined && !isObject(body.metadata)) throw badRequest(`${type.kind} in version "${type.version}" cannot be handled as a ${type.kind}: metadata must be an object`);
    const object = asKubeObject(clone(body));
    Reflect.deleteProperty(object, 'apiVersion');
    Reflect.deleteProperty(object, 'kind');
    return object;
  }

  private namespaceFor(target: Target, object: KubeObject): string | undefined {
    if (!target.type.namespaced) return undefined;
    const given = object.metadata.namespace;
    if (given !== undefined && given !== '' && given !== target.namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    return target.namespace;
  }

  private requireNamespace(namespace: string): void {
    const found = this.store.get(NAMESPACES.storage, undefined, namespace);
    if (found === undefined) throw notFound(NAMESPACES, namespace);
    if (found.metadata.deletionTimestamp !== undefined) {
      throw new ApiError({
        ...forbidden(NAMESPACES, namespace, '').status,
        message: `unable to create new content in namespace ${namespace} because it is being terminated`,
      });
    }
  }

  private requireName(target: Target, method: string): string {
    if (target.name === undefined) throw methodNotAllowed(method);
    return target.name;
  }

  private existing(target: Target): KubeObject {
    const name = this.requireName(target, 'GET');
    const found = this.store.get(target.type.storage, target.namespace, name);
    if (found === undefined) throw notFound(target.type, name);
    return found;
  }
}

function rootSchema(type: ResourceType): SchemaNode {
  return {
    ...type.schema,
    type: 'object',
    properties: { ...(type.schema.properties ?? {}), apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: OBJECT_META },
  };
}

/** Metadata only the server writes, carried over from the stored object whatever the client sent. */
function withServerOwnedMetadata(sent: Metadata, existing: KubeObject): Metadata {
  const merged: Metadata = { ...sent, name: existing.metadata.name };
  for (const key of ['namespace', 'uid', 'creationTimestamp', 'generation', 'deletionTimestamp', 'deletionGracePeriodSeconds']) {
    if (existing.metadata[key] === undefined) Reflect.deleteProperty(merged, key);
    else merged[key] = existing.metadata[key];
  }
  return merged;
}

/** Whether anything but metadata (and status, when it has its own endpoint) changed. */
function desiredStateChanged(type: ResourceType, before: KubeObject, after: KubeObject): boolean {
  const strip = (o: KubeObject): JsonObject => {
    const { metadata: _metadata, status, ...rest } = o;
    return type.statusSubresource ? rest : { ...rest, status };
  };
  return !deepEqual(strip(before), strip(after));
}

function metadataIssues(type: ResourceType, object: KubeObject): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const name = object.metadata.name ?? '';
  const label = type === NAMESPACES;
  const pattern = new RegExp(`^${label ? DNS1123_LABEL : DNS1123_SUBDOMAIN}$`);
  if (!pattern.test(name) || name.length > (label ? 63 : 253)) {
    const what = label
      ? `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '${DNS1123_LABEL}')`
      : `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '${DNS1123_SUBDOMAIN}')`;
    issues.push({ field: 'metadata.name', reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(name)}: ${what}`, decode: false });
  }
  for (const [key, value] of Object.entries(object.metadata.labels ?? {})) {
    if (!QUALIFIED_NAME.test(key) || key.length > 316) {
      issues.push({ field: 'metadata.labels', reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(key)}: name part must consist of alphanumeric characters, '-', '_' or '.'`, decode: false });
    }
    if (!new RegExp(`^${LABEL_VALUE}$`).test(value) || value.length > 63) {
      issues.push({
        field: 'metadata.labels',
        reason: 'FieldValueInvalid',
        message: `Invalid value: ${JSON.stringify(value)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '${LABEL_VALUE}')`,
        decode: false,
      });
    }
  }
  for (const finalizer of object.metadata.finalizers ?? []) {
    if (!QUALIFIED_NAME.test(finalizer)) {
      issues.push({ field: 'metadata.finalizers', reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(finalizer)}: name part must consist of alphanumeric characters, '-', '_' or '.'`, decode: false });
    }
  }
  return issues;
}

function finalizerWarnings(object: KubeObject): string[] {
  return (object.metadata.finalizers ?? [])
    .filter((f) => !f.includes('/') && f !== 'kubernetes' && f !== 'orphan' && f !== 'foregroundDeletion')
    .map((f) => `metadata.finalizers: "${f}": prefer a domain-qualified finalizer name including a path (/) to avoid accidental conflicts with other finalizer writers`);
}

function cause(issue: FieldIssue): StatusCause {
  return { reason: issue.reason, message: issue.message, field: issue.field };
}

function generateName(prefix: string): string {
  let suffix = '';
  for (let i = 0; i < 5; i++) suffix += GENERATED_SUFFIX_ALPHABET[randomInt(GENERATED_SUFFIX_ALPHABET.length)] ?? 'x';
  return `${prefix.slice(0, 58)}${suffix}`;
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch (error) {
    throw badRequest(`error decoding patch: ${(error as Error).message}`);
  }
}

function encodeContinue(rv: string, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start }), 'utf8').toString('base64url');
}

function decodeContinue(token: string): { rv: string; start: string } {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (isObject(decoded) && typeof decoded.rv === 'string' && typeof decoded.start === 'string') return { rv: decoded.rv, start: decoded.start };
  } catch {
    // fall through to the error below
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => [k, sortKeys(v)]),
  );
}
