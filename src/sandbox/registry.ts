// The kinds the sandbox serves, and the discovery documents that describe them. Built-in kinds
// are declared in builtins.ts; custom kinds come from CustomResourceDefinition objects, as on a
// real server: creating a CRD serves its kinds, deleting it stops serving them.

import type { SchemaNode } from '../api/crd.ts';
import { describeValue, isObject, type JsonObject } from './json.ts';
import type { FieldIssue } from './schema.ts';
import type { KubeObject } from './store.ts';
import { AGE_COLUMN, evaluate, type PrinterColumn } from './table.ts';

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  /** The whole object's schema; `metadata` is always checked as ObjectMeta. */
  schema: SchemaNode;
  /** Built-in kinds are Go structs: a wrong JSON type fails to decode (400) rather than to validate (422). */
  typed: boolean;
  /** Served from a CRD: generation counts every change, list items carry kind, updates need a resourceVersion. */
  custom: boolean;
  statusSubresource: boolean;
  /** metadata.generation counts changes to the object's desired state (custom resources, CRDs). */
  generation: boolean;
  /** Columns after Name in `kubectl get`. */
  printerColumns: PrinterColumn[];
  /** Field selectors beyond metadata.name and metadata.namespace. */
  fieldSelectors: Record<string, (object: KubeObject) => string | undefined>;
  /** Kind-specific changes on every write (Secret's stringData, a CRD's status), after the schema's defaults. */
  prepare?: (object: KubeObject, previous: KubeObject | undefined) => void;
  /** Kind-specific checks, for what a schema cannot say. */
  check?: (object: KubeObject, previous: KubeObject | undefined) => FieldIssue[];
  /** All versions of one group's resource share one store (and so do the two Event APIs). */
  storage: string;
  /** For a kind stored in another kind's form (events.k8s.io Events are core Events): converts to and from it. */
  toStorage?: (object: KubeObject) => KubeObject;
  fromStorage?: (object: KubeObject) => KubeObject;
}

export const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export class Registry {
  private readonly builtins: ResourceType[];
  private readonly custom = new Map<string, ResourceType[]>();

  constructor(builtins: ResourceType[]) {
    this.builtins = builtins;
  }

  all(): ResourceType[] {
    return [...this.builtins, ...[...this.custom.values()].flat()];
  }

  find(group: string, version: string, plural: string): ResourceType | undefined {
    return this.all().find((t) => t.group === group && t.version === version && t.plural === plural);
  }

  /** Serves (or re-serves) the kinds of a CustomResourceDefinition. */
  serve(crdName: string, types: ResourceType[]): void {
    this.custom.set(crdName, types);
  }

  stopServing(crdName: string): ResourceType[] {
    const types = this.custom.get(crdName) ?? [];
    this.custom.delete(crdName);
    return types;
  }

  apiVersions(host: string): JsonObject {
    return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: host }] };
  }

  apiGroupList(): JsonObject {
    const names = [...new Set(this.all().map((t) => t.group))].filter((g) => g !== '');
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: names.map((name) => this.apiGroupBody(name)) };
  }

  apiGroup(group: string): JsonObject | undefined {
    if (group === '' || !this.all().some((t) => t.group === group)) return undefined;
    return { kind: 'APIGroup', apiVersion: 'v1', ...this.apiGroupBody(group) };
  }

  resourceList(group: string, version: string): JsonObject | undefined {
    const types = this.all().filter((t) => t.group === group && t.version === version);
    if (types.length === 0) return undefined;
    const resources: JsonObject[] = [];
    for (const t of types) {
      resources.push({
        name: t.plural,
        singularName: t.singular,
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: VERBS,
        ...(t.shortNames.length > 0 ? { shortNames: t.shortNames } : {}),
        ...(t.categories.length > 0 ? { categories: t.categories } : {}),
      });
      if (t.statusSubresource) {
        resources.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
      }
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group === '' ? version : `${group}/${version}`, resources };
  }

  private apiGroupBody(group: string): JsonObject {
    const versions = sortVersions([...new Set(this.all().filter((t) => t.group === group).map((t) => t.version))]).map((version) => ({
      groupVersion: `${group}/${version}`,
      version,
    }));
    return { name: group, versions, preferredVersion: versions[0] };
  }
}

/** Kubernetes version priority: GA before beta before alpha, higher numbers first, then others by name. */
export function sortVersions(versions: string[]): string[] {
  const rank = (v: string): [number, number, number] => {
    const match = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (match === null) return [3, 0, 0];
    const stability = match[2] === undefined ? 0 : match[2] === 'beta' ? 1 : 2;
    return [stability, -Number(match[1]), -Number(match[3] ?? 0)];
  };
  return [...versions].sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    for (let i = 0; i < 3; i++) if ((ra[i] ?? 0) !== (rb[i] ?? 0)) return (ra[i] ?? 0) - (rb[i] ?? 0);
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

/** The kinds a CRD serves, or the problems (for a 422) that keep it from serving any. */
export function typesFromCrd(crd: KubeObject): { types: ResourceType[]; problems: FieldIssue[] } {
  const problems: FieldIssue[] = [];
  const problem = (field: string, message: string): void => {
    problems.push({ field, reason: 'FieldValueInvalid', message, decode: false });
  };
  const spec = isObject(crd.spec) ? crd.spec : {};
  const names = isObject(spec.names) ? spec.names : {};
  const group = typeof spec.group === 'string' ? spec.group : '';
  const plural = typeof names.plural === 'string' ? names.plural : '';
  const kind = typeof names.kind === 'string' ? names.kind : '';
  if (group === '') problems.push({ field: 'spec.group', reason: 'FieldValueRequired', message: 'Required value', decode: false });
  else if (!group.includes('.')) problem('spec.group', `Invalid value: "${group}": should be a domain with at least one dot`);
  if (plural === '') problems.push({ field: 'spec.names.plural', reason: 'FieldValueRequired', message: 'Required value', decode: false });
  if (kind === '') problems.push({ field: 'spec.names.kind', reason: 'FieldValueRequired', message: 'Required value', decode: false });
  if (crd.metadata.name !== `${plural}.${group}`) problem('metadata.name', `Invalid value: "${crd.metadata.name ?? ''}": must be spec.names.plural+"."+spec.group`);
  const scope = spec.scope;
  if (scope !== 'Namespaced' && scope !== 'Cluster') problems.push({ field: 'spec.scope', reason: 'FieldValueNotSupported', message: `Unsupported value: ${describeValue(scope)}: supported values: "Cluster", "Namespaced"`, decode: false });
  const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObject) : [];
  if (versions.length === 0) problems.push({ field: 'spec.versions', reason: 'FieldValueRequired', message: 'Required value', decode: false });
  const storageVersions = versions.filter((v) => v.storage === true);
  if (versions.length > 0 && storageVersions.length !== 1) problem('spec.versions', `Invalid value: ${JSON.stringify(versions.map((v) => v.name))}: must have exactly one version marked as storage version`);
  if (problems.length > 0) return { types: [], problems };

  const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((s): s is string => typeof s === 'string') : []);
  const types = versions
    .filter((v) => v.served !== false)
    .map((v): ResourceType => {
      const schema = isObject(v.schema) && isObject(v.schema.openAPIV3Schema) ? (v.schema.openAPIV3Schema as SchemaNode) : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
      const columns = Array.isArray(v.additionalPrinterColumns) ? v.additionalPrinterColumns.filter(isObject).map(printerColumn) : [AGE_COLUMN];
      const selectable = Array.isArray(v.selectableFields) ? v.selectableFields.filter(isObject).map((f) => String(f.jsonPath)) : [];
      return {
        group,
        version: String(v.name),
        plural,
        singular: typeof names.singular === 'string' ? names.singular : kind.toLowerCase(),
        kind,
        listKind: typeof names.listKind === 'string' ? names.listKind : `${kind}List`,
        namespaced: scope === 'Namespaced',
        shortNames: strings(names.shortNames),
        categories: strings(names.categories),
        schema,
        typed: false,
        custom: true,
        statusSubresource: isObject(v.subresources) && isObject(v.subresources.status),
        generation: true,
        printerColumns: columns,
        fieldSelectors: Object.fromEntries(selectable.map((path) => [path.replace(/^\./, ''), (o: KubeObject) => selectableValue(o, path)])),
        storage: `${plural}.${group}`,
      };
    });
  return { types, problems };
}

function printerColumn(raw: JsonObject): PrinterColumn {
  return {
    name: String(raw.name),
    type: String(raw.type),
    jsonPath: String(raw.jsonPath),
    ...(typeof raw.format === 'string' ? { format: raw.format } : {}),
    ...(typeof raw.description === 'string' ? { description: raw.description } : {}),
    ...(typeof raw.priority === 'number' ? { priority: raw.priority } : {}),
  };
}

function selectableValue(object: KubeObject, path: string): string | undefined {
  const [value] = evaluate(object, path);
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : describeValue(value);
}
