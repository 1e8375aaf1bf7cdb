// A small OpenAPI v3 publication: kubectl apply (validation on by default) downloads it to learn
// whether the server does field validation itself — it looks for a PATCH operation of the kind
// with a `fieldValidation` query parameter — and without it refuses to apply. The documents
// also carry each kind's schema, so that `kubectl explain` works.

import { createHash } from 'node:crypto';
import type { SchemaNode } from '../api/crd.ts';
import { OBJECT_META } from './builtins.ts';
import type { JsonObject } from './json.ts';
import type { Registry, ResourceType } from './registry.ts';

const PATCH_PARAMETERS = ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((name) => ({ name, in: 'query', schema: { type: name === 'force' ? 'boolean' : 'string' } }));

function path(group: string, version: string): string {
  return group === '' ? `api/${version}` : `apis/${group}/${version}`;
}

function schemaName(type: ResourceType): string {
  const reversed = type.group === '' ? 'io.k8s.api.core' : type.group.split('.').reverse().join('.');
  return `${reversed}.${type.version}.${type.kind}`;
}

/** The document for one group-version, or undefined when nothing is served there. */
export function groupVersionDocument(registry: Registry, group: string, version: string): JsonObject | undefined {
  const types = registry.all().filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const paths: JsonObject = {};
  const schemas: JsonObject = {};
  for (const type of types) {
    const gvk = { group: type.group, version: type.version, kind: type.kind };
    const item = `/${path(group, version)}/${type.namespaced ? 'namespaces/{namespace}/' : ''}${type.plural}/{name}`;
    const ref = { $ref: `#/components/schemas/${schemaName(type)}` };
    const body = { content: { 'application/json': { schema: ref } } };
    const ok = { '200': { description: 'OK', ...body } };
    paths[item] = {
      get: { operationId: `read${type.kind}`, 'x-kubernetes-action': 'get', 'x-kubernetes-group-version-kind': gvk, responses: ok },
      put: { operationId: `replace${type.kind}`, 'x-kubernetes-action': 'put', 'x-kubernetes-group-version-kind': gvk, requestBody: body, responses: ok },
      patch: {
        operationId: `patch${type.kind}`,
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': gvk,
        parameters: PATCH_PARAMETERS,
        requestBody: { content: { 'application/merge-patch+json': { schema: { type: 'object' } } } },
        responses: ok,
      },
      delete: { operationId: `delete${type.kind}`, 'x-kubernetes-action': 'delete', 'x-kubernetes-group-version-kind': gvk, responses: { '200': { description: 'OK' } } },
    };
    const own: SchemaNode = type.schema;
    schemas[schemaName(type)] = {
      ...own,
      type: 'object',
      properties: { ...(own.properties ?? {}), apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: OBJECT_META },
      'x-kubernetes-group-version-kind': [gvk],
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths, components: { schemas } };
}

/** The discovery root at /openapi/v3: one URL per group-version, with a hash that changes with the document. */
export function openApiRoot(registry: Registry): JsonObject {
  const paths: JsonObject = {};
  const seen = new Set<string>();
  for (const type of registry.all()) {
    const key = path(type.group, type.version);
    if (seen.has(key)) continue;
    seen.add(key);
    const document = groupVersionDocument(registry, type.group, type.version);
    const hash = createHash('sha512').update(JSON.stringify(document)).digest('hex').slice(0, 64).toUpperCase();
    paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
  }
  return { paths };
}
