// Generates the ModelCanary CustomResourceDefinition from the zod schema, so that the API
// server enforces what `validate` and the controller enforce. `npm run crds` writes it to
// crds/modelcanary.yaml; a test fails when the committed file differs.

import { z } from 'zod';
import { API_VERSION, GROUP, KIND, ModelCanarySpec, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from './modelcanary.ts';
import { ModelCanaryStatus } from './status.ts';

/** An OpenAPI v3 schema node as Kubernetes accepts it (structural, with x-kubernetes extensions). */
export type SchemaNode = {
  type?: string;
  description?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  pattern?: string;
  format?: string;
  nullable?: boolean;
  oneOf?: SchemaNode[];
  'x-kubernetes-validations'?: CelValidation[];
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
} & Record<string, unknown>;

export interface CelValidation {
  rule: string;
  message: string;
  fieldPath?: string;
}

export function specSchema(): SchemaNode {
  return structural(z.toJSONSchema(ModelCanarySpec, { io: 'input', target: 'openapi-3.0', unrepresentable: 'throw' }) as SchemaNode);
}

export function statusSchema(): SchemaNode {
  return structural(z.toJSONSchema(ModelCanaryStatus, { io: 'output', target: 'openapi-3.0', unrepresentable: 'throw' }) as SchemaNode);
}

export function modelCanaryCrd(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'modelcanary', 'app.kubernetes.io/part-of': 'modelcanary' },
    },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: SINGULAR, shortNames: SHORT_NAMES, categories: ['modelcanary'] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Model', type: 'string', jsonPath: '.spec.model' },
            { name: 'Stable', type: 'string', jsonPath: '.spec.stable.version' },
            { name: 'Canary', type: 'string', jsonPath: '.spec.canary.version' },
            // Step before Weight, as `kubectl modelcanary list` shows them.
            { name: 'Step', type: 'string', jsonPath: '.status.stepLabel', description: 'The step in force: 2/3 is the second of three' },
            { name: 'Weight', type: 'integer', jsonPath: '.status.canaryWeight', description: 'Percent of traffic on the canary' },
            { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            { name: 'Last Check', type: 'string', jsonPath: '.status.lastAnalysis.decision', description: 'What the last check decided: hold, advance, promote or rollback', priority: 1 },
            { name: 'Message', type: 'string', jsonPath: '.status.message', priority: 1 },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `A progressive rollout of a new model version (${API_VERSION}).`,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: API_VERSION },
                kind: { type: 'string', description: KIND },
                metadata: { type: 'object' },
                spec: withoutDefaults(specSchema()),
                status: statusSchema(),
              },
            },
          },
        },
      ],
    },
  };
}

/**
 * The spec as the API server keeps it: what its author wrote. The controller fills in the
 * defaults (zod's prefaults) each time it reads a spec, so the CRD declares none: `kubectl
 * get -o yaml` and `kubectl describe` show the manifest, not a dozen settings nobody chose.
 * Each default moves into its field's description, where `kubectl explain` shows it; the
 * README's reference is rendered from specSchema(), with its Default column.
 */
export function withoutDefaults(node: SchemaNode): SchemaNode {
  const { default: value, ...rest } = node;
  const out: SchemaNode = { ...rest };
  if (value !== undefined && !(typeof value === 'object' && value !== null && !Array.isArray(value))) {
    const text = typeof value === 'string' ? value : JSON.stringify(value).replaceAll(',', ', ');
    out.description = [out.description, `Default: ${text}.`].filter(Boolean).join(' ');
  }
  if (out.properties !== undefined) out.properties = Object.fromEntries(Object.entries(out.properties).map(([k, v]) => [k, withoutDefaults(v)]));
  if (out.items !== undefined) out.items = withoutDefaults(out.items);
  return out;
}

const SAFE_INTEGER_BOUND = Number.MAX_SAFE_INTEGER;

/**
 * Rewrites zod's JSON Schema into a Kubernetes structural schema: no additionalProperties:false
 * (the API server prunes unknown fields instead), no unbounded-integer noise, no regex that
 * duplicates a format, and the discriminated union of metrics merged into one object whose
 * per-type rules become CEL.
 */
function structural(node: SchemaNode): SchemaNode {
  const { $schema: _schema, additionalProperties, oneOf, ...rest } = node;
  let out: SchemaNode = { ...rest };
  if (additionalProperties !== undefined && additionalProperties !== false) {
    out.additionalProperties = additionalProperties === true ? true : structural(additionalProperties);
  }
  if (out.minimum === -SAFE_INTEGER_BOUND) delete out.minimum;
  if (out.maximum === SAFE_INTEGER_BOUND) delete out.maximum;
  if (out.format === 'date-time') delete out.pattern;
  if (out.properties !== undefined) {
    out.properties = Object.fromEntries(Object.entries(out.properties).map(([k, v]) => [k, structural(v)]));
  }
  if (out.items !== undefined) out.items = structural(out.items);
  if (oneOf !== undefined) {
    const merged = mergeVariants(oneOf.map(structural));
    out = { ...merged, ...out, description: [out.description, merged.description].filter(Boolean).join(' ') };
  }
  return out;
}

interface Variant {
  tag: string;
  node: SchemaNode;
}

/**
 * One object for a discriminated union. Kubernetes requires every property to be declared
 * outside oneOf, so the variants' properties are united; what differs between variants
 * (which fields each type needs and allows, and per-type bounds) becomes CEL keyed on the
 * discriminator.
 */
function mergeVariants(nodes: SchemaNode[]): SchemaNode {
  const discriminator = findDiscriminator(nodes);
  const variants: Variant[] = nodes.map((node) => ({ tag: String(node.properties?.[discriminator]?.enum?.[0]), node }));
  const properties: Record<string, SchemaNode> = {};
  const rules: CelValidation[] = [];
  const guard = (tag: string): string => `self.${discriminator} != '${tag}'`;

  for (const { node } of variants) {
    for (const [name, property] of Object.entries(node.properties ?? {})) {
      if (name === discriminator) continue;
      const existing = properties[name];
      if (existing === undefined) {
        properties[name] = property;
      } else if (JSON.stringify(existing) !== JSON.stringify(property)) {
        properties[name] = mergeProperty(existing, property);
      }
    }
  }
  // Bounds that differ between variants move into per-type CEL; the shared property keeps none.
  for (const [name, merged] of Object.entries(properties)) {
    const owners = variants.filter((v) => v.node.properties?.[name] !== undefined);
    const differs = owners.some((v) => JSON.stringify(v.node.properties?.[name]) !== JSON.stringify(owners[0]?.node.properties?.[name]));
    if (!differs) continue;
    for (const { tag, node } of owners) {
      const bound = boundsRule(name, node.properties?.[name] ?? {});
      if (bound !== undefined) rules.push({ rule: `${guard(tag)} || !has(self.${name}) || (${bound.rule})`, message: `${tag}: ${name} ${bound.message}`, fieldPath: `.${name}` });
    }
    properties[name] = withoutBounds(merged);
  }

  const required = variants.map((v) => new Set(v.node.required ?? []));
  const common = [...(required[0] ?? [])].filter((name) => required.every((r) => r.has(name)));
  const all = Object.keys(properties);
  for (const { tag, node } of variants) {
    const own = Object.keys(node.properties ?? {});
    const needs = (node.required ?? []).filter((name) => !common.includes(name));
    if (needs.length > 0) {
      rules.push({ rule: `${guard(tag)} || (${needs.map((n) => `has(self.${n})`).join(' && ')})`, message: `${tag} metrics need ${needs.join(' and ')}` });
    }
    const forbidden = all.filter((name) => !own.includes(name));
    if (forbidden.length > 0) {
      rules.push({
        rule: `${guard(tag)} || !(${forbidden.map((n) => `has(self.${n})`).join(' || ')})`,
        message: `${tag} metrics take only ${own.join(', ')}`,
      });
    }
    for (const v of node['x-kubernetes-validations'] ?? []) rules.push({ ...v, rule: `${guard(tag)} || (${v.rule})` });
  }

  const tagNode = variants[0]?.node.properties?.[discriminator] ?? {};
  const descriptions = variants.map((v) => `${v.tag}: ${v.node.description ?? ''}`).join(' ');
  return {
    type: 'object',
    description: descriptions,
    properties: { [discriminator]: { ...tagNode, enum: variants.map((v) => v.tag) }, ...properties },
    required: [discriminator, ...common.filter((n) => n !== discriminator)],
    ...(rules.length > 0 ? { 'x-kubernetes-validations': rules } : {}),
  };
}

function findDiscriminator(nodes: SchemaNode[]): string {
  const first = nodes[0]?.properties ?? {};
  const name = Object.keys(first).find((key) => nodes.every((n) => n.properties?.[key]?.enum?.length === 1));
  if (name === undefined) throw new Error('cannot generate the CRD: a union without a discriminator cannot be made structural');
  return name;
}

function mergeProperty(a: SchemaNode, b: SchemaNode): SchemaNode {
  if (a.type !== b.type) throw new Error(`cannot generate the CRD: variants declare one property with types ${a.type} and ${b.type}`);
  const description = a.description === b.description ? a.description : [a.description, b.description].filter(Boolean).join(' ');
  return { ...a, description };
}

const BOUND_KEYS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const;

function withoutBounds(node: SchemaNode): SchemaNode {
  return Object.fromEntries(Object.entries(node).filter(([key]) => !(BOUND_KEYS as readonly string[]).includes(key)));
}

function boundsRule(name: string, node: SchemaNode): { rule: string; message: string } | undefined {
  const parts: string[] = [];
  const words: string[] = [];
  const literal = (n: number): string => (node.type === 'number' && Number.isInteger(n) ? `${n}.0` : String(n));
  if (node.minimum !== undefined) {
    parts.push(`self.${name} ${node.exclusiveMinimum === true ? '>' : '>='} ${literal(node.minimum)}`);
    words.push(`${node.exclusiveMinimum === true ? 'greater than' : 'at least'} ${node.minimum}`);
  }
  if (node.maximum !== undefined) {
    parts.push(`self.${name} ${node.exclusiveMaximum === true ? '<' : '<='} ${literal(node.maximum)}`);
    words.push(`${node.exclusiveMaximum === true ? 'less than' : 'at most'} ${node.maximum}`);
  }
  return parts.length === 0 ? undefined : { rule: parts.join(' && '), message: `must be ${words.join(' and ')}` };
}
