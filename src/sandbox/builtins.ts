// The built-in kinds the sandbox serves, with schemas modelled on their Go types (only the fields
// we use are declared precisely), and the CRDs installed by default: ModelCanary as the project
// generates it, Istio's VirtualService and DestinationRule, and Gateway API's HTTPRoute. The
// Istio and Gateway kinds get a permissive schema; the router validates their contents.

import type { SchemaNode } from '../api/crd.ts';
import { modelCanaryCrd } from '../api/crd.ts';
import { describeValue, isObject } from './json.ts';
import type { ResourceType } from './registry.ts';
import type { FieldIssue } from './schema.ts';
import type { KubeObject } from './store.ts';
import { AGE_COLUMN } from './table.ts';

const ANY_OBJECT: SchemaNode = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
const STRING_MAP: SchemaNode = { type: 'object', additionalProperties: { type: 'string' } };
const BYTES_MAP: SchemaNode = { type: 'object', additionalProperties: { type: 'string', format: 'byte' } };
const MICRO_TIME: SchemaNode = { type: 'string', format: 'micro-time' };
const TIME: SchemaNode = { type: 'string', format: 'date-time' };
const OBJECT_REFERENCE: SchemaNode = {
  type: 'object',
  properties: Object.fromEntries(['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'].map((f) => [f, { type: 'string' }])),
};

/** ObjectMeta as a schema: what a client may send in metadata (the rest is pruned). */
export const OBJECT_META: SchemaNode = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    generateName: { type: 'string' },
    namespace: { type: 'string' },
    uid: { type: 'string' },
    resourceVersion: { type: 'string' },
    generation: { type: 'integer' },
    creationTimestamp: { type: 'string', nullable: true },
    deletionTimestamp: { type: 'string', nullable: true },
    deletionGracePeriodSeconds: { type: 'integer' },
    labels: STRING_MAP,
    annotations: STRING_MAP,
    finalizers: { type: 'array', items: { type: 'string' }, 'x-kubernetes-list-type': 'set' },
    ownerReferences: { type: 'array', items: ANY_OBJECT },
    managedFields: { type: 'array', items: ANY_OBJECT },
  },
};

function objectSchema(properties: Record<string, SchemaNode>): SchemaNode {
  return { type: 'object', properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: OBJECT_META, ...properties } };
}

function builtin(fields: Partial<ResourceType> & Pick<ResourceType, 'group' | 'version' | 'plural' | 'kind' | 'schema'>): ResourceType {
  return {
    singular: fields.kind.toLowerCase(),
    listKind: `${fields.kind}List`,
    namespaced: true,
    shortNames: [],
    categories: [],
    typed: true,
    custom: false,
    statusSubresource: false,
    generation: false,
    printerColumns: [AGE_COLUMN],
    fieldSelectors: {},
    storage: fields.group === '' ? fields.plural : `${fields.plural}.${fields.group}`,
    ...fields,
  };
}

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const field = (object: KubeObject, ...path: string[]): unknown => path.reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), object);
const countKeys = (...maps: unknown[]): number => maps.reduce<number>((n, m) => n + (isObject(m) ? Object.keys(m).length : 0), 0);

function required(object: KubeObject, paths: string[][]): FieldIssue[] {
  return paths
    .filter((path) => {
      const value = field(object, ...path);
      return value === undefined || value === '';
    })
    .map((path) => ({ field: path.join('.'), reason: 'FieldValueRequired', message: 'Required value', decode: false }));
}

function eventType(object: KubeObject, path: string): FieldIssue[] {
  const type = object.type;
  if (type === undefined || type === 'Normal' || type === 'Warning') return [];
  return [{ field: path, reason: 'FieldValueInvalid', message: `Invalid value: ${describeValue(type)}: has invalid value: ${describeValue(type)}`, decode: false }];
}

function immutableData(object: KubeObject, previous: KubeObject | undefined, fields: string[]): FieldIssue[] {
  if (previous?.immutable !== true) return [];
  const changed = fields.filter((f) => JSON.stringify(object[f] ?? {}) !== JSON.stringify(previous[f] ?? {}));
  const issues: FieldIssue[] = changed.map((f) => ({ field: f, reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', decode: false }));
  if (object.immutable !== true) issues.push({ field: 'immutable', reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', decode: false });
  return issues;
}

export const NAMESPACES = builtin({
  group: '',
  version: 'v1',
  plural: 'namespaces',
  kind: 'Namespace',
  namespaced: false,
  shortNames: ['ns'],
  statusSubresource: true,
  schema: objectSchema({
    spec: { type: 'object', properties: { finalizers: { type: 'array', items: { type: 'string' } } } },
    status: { type: 'object', properties: { phase: { type: 'string' }, conditions: { type: 'array', items: ANY_OBJECT } } },
  }),
  printerColumns: [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, AGE_COLUMN],
  fieldSelectors: { 'status.phase': (o) => text(field(o, 'status', 'phase')) },
  prepare: (object, previous) => {
    object.spec = previous?.spec ?? { finalizers: ['kubernetes'] };
    object.status = previous?.status ?? { phase: 'Active' };
  },
});

const CONFIGMAPS = builtin({
  group: '',
  version: 'v1',
  plural: 'configmaps',
  kind: 'ConfigMap',
  shortNames: ['cm'],
  schema: objectSchema({ data: STRING_MAP, binaryData: BYTES_MAP, immutable: { type: 'boolean' } }),
  printerColumns: [{ name: 'Data', type: 'integer', jsonPath: '.data', compute: (o) => countKeys(o.data, o.binaryData) }, AGE_COLUMN],
  check: (object, previous) => immutableData(object, previous, ['data', 'binaryData']),
});

const SECRETS = builtin({
  group: '',
  version: 'v1',
  plural: 'secrets',
  kind: 'Secret',
  schema: objectSchema({ data: BYTES_MAP, stringData: STRING_MAP, type: { type: 'string' }, immutable: { type: 'boolean' } }),
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.type' },
    { name: 'Data', type: 'integer', jsonPath: '.data', compute: (o) => countKeys(o.data) },
    AGE_COLUMN,
  ],
  fieldSelectors: { type: (o) => text(o.type) },
  // stringData is write-only: the API server merges it into data and never stores it.
  prepare: (object) => {
    if (isObject(object.stringData)) {
      const data = isObject(object.data) ? object.data : {};
      for (const [key, value] of Object.entries(object.stringData)) data[key] = Buffer.from(typeof value === 'string' ? value : describeValue(value), 'utf8').toString('base64');
      object.data = data;
    }
    Reflect.deleteProperty(object, 'stringData');
    if (object.type === undefined || object.type === '') object.type = 'Opaque';
  },
  check: (object, previous) => immutableData(object, previous, ['data']),
});

const EVENT_SOURCE: SchemaNode = { type: 'object', properties: { component: { type: 'string' }, host: { type: 'string' } } };

const CORE_EVENTS = builtin({
  group: '',
  version: 'v1',
  plural: 'events',
  kind: 'Event',
  shortNames: ['ev'],
  schema: objectSchema({
    involvedObject: OBJECT_REFERENCE,
    reason: { type: 'string' },
    message: { type: 'string' },
    source: EVENT_SOURCE,
    firstTimestamp: { ...TIME, nullable: true },
    lastTimestamp: { ...TIME, nullable: true },
    count: { type: 'integer' },
    type: { type: 'string' },
    eventTime: { ...MICRO_TIME, nullable: true },
    series: { type: 'object', properties: { count: { type: 'integer' }, lastObservedTime: MICRO_TIME } },
    action: { type: 'string' },
    related: OBJECT_REFERENCE,
    reportingComponent: { type: 'string' },
    reportingInstance: { type: 'string' },
  }),
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.type' },
    { name: 'Reason', type: 'string', jsonPath: '.reason' },
    { name: 'Object', type: 'string', jsonPath: '.involvedObject', compute: (o) => `${(text(field(o, 'involvedObject', 'kind')) ?? '').toLowerCase()}/${text(field(o, 'involvedObject', 'name')) ?? ''}` },
    { name: 'Message', type: 'string', jsonPath: '.message' },
    AGE_COLUMN,
  ],
  fieldSelectors: {
    ...Object.fromEntries(
      ['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'].map((f) => [`involvedObject.${f}`, (o: KubeObject) => text(field(o, 'involvedObject', f)) ?? '']),
    ),
    reason: (o) => text(o.reason) ?? '',
    reportingComponent: (o) => text(o.reportingComponent) ?? '',
    source: (o) => text(field(o, 'source', 'component')) ?? '',
    type: (o) => text(o.type) ?? '',
  },
  check: (object) => eventType(object, 'type'),
});

/** events.k8s.io/v1 field names and the core/v1 names they are stored under. */
const EVENT_FIELDS: [string, string][] = [
  ['regarding', 'involvedObject'],
  ['note', 'message'],
  ['reportingController', 'reportingComponent'],
  ['deprecatedSource', 'source'],
  ['deprecatedFirstTimestamp', 'firstTimestamp'],
  ['deprecatedLastTimestamp', 'lastTimestamp'],
  ['deprecatedCount', 'count'],
];

function renamed(object: KubeObject, pairs: [string, string][]): KubeObject {
  const out: KubeObject = { ...object };
  for (const [from, to] of pairs) {
    if (Object.hasOwn(out, from)) {
      out[to] = out[from];
      Reflect.deleteProperty(out, from);
    }
  }
  return out;
}

// One store, two APIs: an Event written through events.k8s.io/v1 is a core/v1 Event too, so
// that `kubectl get events` and `kubectl describe` show what a controller recorded either way.
const EVENTS = builtin({
  group: 'events.k8s.io',
  version: 'v1',
  plural: 'events',
  kind: 'Event',
  shortNames: ['ev'],
  storage: CORE_EVENTS.storage,
  toStorage: (object) => renamed(object, EVENT_FIELDS),
  fromStorage: (object) => renamed(object, EVENT_FIELDS.map(([external, stored]) => [stored, external])),
  schema: objectSchema({
    eventTime: { ...MICRO_TIME, nullable: true },
    series: { type: 'object', properties: { count: { type: 'integer' }, lastObservedTime: MICRO_TIME } },
    reportingController: { type: 'string' },
    reportingInstance: { type: 'string' },
    action: { type: 'string' },
    reason: { type: 'string' },
    regarding: OBJECT_REFERENCE,
    related: OBJECT_REFERENCE,
    note: { type: 'string' },
    type: { type: 'string' },
    deprecatedSource: EVENT_SOURCE,
    deprecatedFirstTimestamp: TIME,
    deprecatedLastTimestamp: TIME,
    deprecatedCount: { type: 'integer' },
  }),
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.type' },
    { name: 'Reason', type: 'string', jsonPath: '.reason' },
    { name: 'Object', type: 'string', jsonPath: '.regarding', compute: (o) => `${(text(field(o, 'regarding', 'kind')) ?? '').toLowerCase()}/${text(field(o, 'regarding', 'name')) ?? ''}` },
    { name: 'Note', type: 'string', jsonPath: '.note' },
    AGE_COLUMN,
  ],
  // Selectors read the stored (core/v1) form.
  fieldSelectors: {
    ...Object.fromEntries(['kind', 'namespace', 'name', 'uid'].map((f) => [`regarding.${f}`, (o: KubeObject) => text(field(o, 'involvedObject', f)) ?? ''])),
    reason: (o) => text(o.reason) ?? '',
    reportingController: (o) => text(o.reportingComponent) ?? '',
    type: (o) => text(o.type) ?? '',
  },
  // events.k8s.io/v1 validates more strictly than core/v1 (ValidateEventCreate).
  check: (object, previous) => [
    ...(previous === undefined ? required(object, [['eventTime'], ['reportingController'], ['reportingInstance'], ['action'], ['reason']]) : []),
    ...(object.type === undefined ? required(object, [['type']]) : eventType(object, 'type')),
  ],
});

const LEASES = builtin({
  group: 'coordination.k8s.io',
  version: 'v1',
  plural: 'leases',
  kind: 'Lease',
  schema: objectSchema({
    spec: {
      type: 'object',
      properties: {
        holderIdentity: { type: 'string', nullable: true },
        leaseDurationSeconds: { type: 'integer', nullable: true },
        acquireTime: { ...MICRO_TIME, nullable: true },
        renewTime: { ...MICRO_TIME, nullable: true },
        leaseTransitions: { type: 'integer', nullable: true },
        strategy: { type: 'string', nullable: true },
        preferredHolder: { type: 'string', nullable: true },
      },
    },
  }),
  printerColumns: [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity' }, AGE_COLUMN],
  check: (object) => {
    const duration = field(object, 'spec', 'leaseDurationSeconds');
    if (typeof duration === 'number' && duration <= 0) {
      return [{ field: 'spec.leaseDurationSeconds', reason: 'FieldValueInvalid', message: `Invalid value: ${duration}: must be greater than 0`, decode: false }];
    }
    return [];
  },
});

export const CUSTOM_RESOURCE_DEFINITIONS = builtin({
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  kind: 'CustomResourceDefinition',
  namespaced: false,
  shortNames: ['crd', 'crds'],
  categories: ['api-extensions'],
  statusSubresource: true,
  generation: true,
  schema: objectSchema({ spec: ANY_OBJECT, status: ANY_OBJECT }),
  printerColumns: [{ name: 'Created At', type: 'string', jsonPath: '.metadata.creationTimestamp' }],
  // The real server sets these once its controllers have accepted the names; here, at once.
  prepare: (object) => {
    const spec = isObject(object.spec) ? object.spec : {};
    const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObject) : [];
    const now = object.metadata.creationTimestamp;
    const condition = (type: string, reason: string, message: string): Record<string, unknown> => ({ type, status: 'True', lastTransitionTime: now, reason, message });
    object.status = {
      conditions: [condition('NamesAccepted', 'NoConflicts', 'no conflicts found'), condition('Established', 'InitialNamesAccepted', 'the initial names have been accepted')],
      acceptedNames: spec.names ?? {},
      storedVersions: versions.filter((v) => v.storage === true).map((v) => v.name),
    };
  },
});

export function builtinTypes(): ResourceType[] {
  return [NAMESPACES, CONFIGMAPS, SECRETS, CORE_EVENTS, EVENTS, LEASES, CUSTOM_RESOURCE_DEFINITIONS];
}

interface PermissiveCrd {
  group: string;
  kind: string;
  plural: string;
  shortNames: string[];
  categories?: string[] | undefined;
  versions: string[];
  columns: Record<string, unknown>[];
}

function permissiveCrd(c: PermissiveCrd): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${c.plural}.${c.group}` },
    spec: {
      group: c.group,
      names: { kind: c.kind, listKind: `${c.kind}List`, plural: c.plural, singular: c.kind.toLowerCase(), shortNames: c.shortNames, categories: c.categories },
      scope: 'Namespaced',
      versions: c.versions.map((name, i) => ({
        name,
        served: true,
        storage: i === 0,
        subresources: { status: {} },
        additionalPrinterColumns: [...c.columns, { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
        schema: { openAPIV3Schema: { type: 'object', properties: { spec: ANY_OBJECT, status: ANY_OBJECT } } },
      })),
    },
  };
}

/** The CRDs a sandbox installs unless told otherwise. */
export function defaultCrds(): Record<string, unknown>[] {
  const istio = ['istio-io', 'networking-istio-io'];
  return [
    modelCanaryCrd(),
    permissiveCrd({
      group: 'networking.istio.io',
      kind: 'VirtualService',
      plural: 'virtualservices',
      shortNames: ['vs'],
      categories: istio,
      versions: ['v1', 'v1beta1', 'v1alpha3'],
      columns: [
        { name: 'Gateways', type: 'string', jsonPath: '.spec.gateways', description: 'The names of gateways and sidecars that should apply these routes' },
        { name: 'Hosts', type: 'string', jsonPath: '.spec.hosts', description: 'The destination hosts to which traffic is being sent' },
      ],
    }),
    permissiveCrd({
      group: 'networking.istio.io',
      kind: 'DestinationRule',
      plural: 'destinationrules',
      shortNames: ['dr'],
      categories: istio,
      versions: ['v1', 'v1beta1', 'v1alpha3'],
      columns: [{ name: 'Host', type: 'string', jsonPath: '.spec.host', description: 'The name of a service from the service registry' }],
    }),
    permissiveCrd({
      group: 'gateway.networking.k8s.io',
      kind: 'HTTPRoute',
      plural: 'httproutes',
      shortNames: [],
      categories: ['gateway-api'],
      versions: ['v1', 'v1beta1'],
      columns: [{ name: 'Hostnames', type: 'string', jsonPath: '.spec.hostnames' }],
    }),
    // The Inference Extension's InferencePool v1 (config/crd/bases/inference.networking.k8s.io_inferencepools.yaml,
    // v1.5.0): short name infpool, no category, status subresource, no printer columns but Age.
    permissiveCrd({
      group: 'inference.networking.k8s.io',
      kind: 'InferencePool',
      plural: 'inferencepools',
      shortNames: ['infpool'],
      versions: ['v1'],
      columns: [],
    }),
  ];
}
