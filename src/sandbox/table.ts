// Server-side printing: `kubectl get` asks for a `meta.k8s.io/v1 Table` and prints its columns
// as they come. Custom resources get a Name column and the CRD's additionalPrinterColumns, as
// apiextensions-apiserver's table convertor makes them; other kinds get their columns below.

import { describeValue, isObject } from './json.ts';
import type { KubeObject } from './store.ts';

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  format?: string;
  description?: string;
  priority?: number;
  /** A value no JSONPath can express (a built-in kind's count of data keys); used instead of jsonPath. */
  compute?: (object: KubeObject) => unknown;
}

/** What a CRD gets when it declares no columns (the API server defaults it so). */
export const AGE_COLUMN: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export interface TableOptions {
  columns: PrinterColumn[];
  includeObject: IncludeObject;
  resourceVersion: string;
  continueToken?: string;
  remainingItemCount?: number;
  now: Date;
  noHeaders?: boolean;
}

export function toTable(objects: KubeObject[], options: TableOptions): Record<string, unknown> {
  const headers = [
    { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 },
    ...options.columns.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? '',
      description: c.description ?? `Custom resource definition column (in JSONPath format): ${c.jsonPath}`,
      priority: c.priority ?? 0,
    })),
  ];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: {
      resourceVersion: options.resourceVersion,
      ...(options.continueToken === undefined ? {} : { continue: options.continueToken }),
      ...(options.remainingItemCount === undefined ? {} : { remainingItemCount: options.remainingItemCount }),
    },
    ...(options.noHeaders === true ? {} : { columnDefinitions: headers }),
    rows: objects.map((object) => ({
      cells: [object.metadata.name ?? '', ...options.columns.map((c) => cell(c, c.compute === undefined ? evaluate(object, c.jsonPath) : [c.compute(object)], options.now))],
      ...rowObject(object, options.includeObject),
    })),
  };
}

function rowObject(object: KubeObject, include: IncludeObject): Record<string, unknown> {
  switch (include) {
    case 'None':
      return {};
    case 'Object':
      return { object };
    case 'Metadata':
      return { object: partialObjectMetadata(object) };
  }
}

export function partialObjectMetadata(object: KubeObject): Record<string, unknown> {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: object.metadata };
}

function cell(column: PrinterColumn, found: unknown[], now: Date): unknown {
  if (found.length === 0) return null;
  const value = found[0];
  if (value === null || value === undefined) return null;
  switch (column.type) {
    case 'string':
      return typeof value === 'string' ? value : describeValue(value);
    case 'integer':
      return typeof value === 'number' ? Math.trunc(value) : null;
    case 'number':
      return typeof value === 'number' ? value : null;
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    case 'date': {
      if (typeof value !== 'string') return null;
      const at = Date.parse(value);
      return Number.isNaN(at) ? '<invalid>' : humanDuration(now.getTime() - at);
    }
    default:
      return null;
  }
}

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration: how kubectl shows an age. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.trunc(hours / 24);
  if (hours < 24 * 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.trunc(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

/**
 * The simple JSONPath of printer columns and selectable fields: `.a.b`, `.a[0]`, `.a['x.y']`,
 * `.a[*].b`. Missing keys give no result.
 */
export function evaluate(root: unknown, path: string): unknown[] {
  let current: unknown[] = [root];
  for (const segment of segments(path)) {
    const next: unknown[] = [];
    for (const node of current) {
      if (segment === '*') {
        if (Array.isArray(node)) next.push(...(node as unknown[]));
        else if (isObject(node)) next.push(...Object.values(node));
      } else if (typeof segment === 'number') {
        if (Array.isArray(node)) {
          const element: unknown = node.at(segment);
          if (element !== undefined) next.push(element);
        }
      } else if (isObject(node) && Object.hasOwn(node, segment)) {
        next.push(node[segment]);
      }
    }
    current = next;
  }
  return current;
}

function segments(path: string): (string | number)[] {
  const trimmed = path.trim().replace(/^\{/, '').replace(/\}$/, '').replace(/^\$/, '');
  const out: (string | number)[] = [];
  const pattern = /\.([^.[\]]+)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(-?\d+)\s*\]|\[\s*\*\s*\]/g;
  for (const match of trimmed.matchAll(pattern)) {
    if (match[1] !== undefined) out.push(match[1] === '*' ? '*' : match[1]);
    else if (match[2] !== undefined) out.push(match[2]);
    else if (match[3] !== undefined) out.push(match[3]);
    else if (match[4] !== undefined) out.push(Number(match[4]));
    else out.push('*');
  }
  return out;
}
