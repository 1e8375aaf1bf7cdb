// What the API server does with a structural OpenAPI v3 schema, in its order: prune unknown
// fields (reporting them, for fieldValidation), apply defaults and drop nulls of non-nullable
// fields, then validate. Messages follow the API server's wording so that what a user reads
// from the sandbox is what a cluster would tell them. CEL rules (x-kubernetes-validations)
// are not evaluated.

import type { SchemaNode } from '../api/crd.ts';
import { clone, deepEqual, describeValue, isObject, jsonType } from './json.ts';

export type IssueReason =
  | 'FieldValueRequired'
  | 'FieldValueInvalid'
  | 'FieldValueTypeInvalid'
  | 'FieldValueNotSupported'
  | 'FieldValueTooMany'
  | 'FieldValueTooLong'
  | 'FieldValueDuplicate'
  | 'FieldValueForbidden';

export interface FieldIssue {
  field: string;
  reason: IssueReason;
  message: string;
  /** A wrong JSON type, or a time the server cannot parse: for built-in kinds the request fails to decode (400), not to validate (422). */
  decode: boolean;
}

function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function item(path: string, index: number | string): string {
  return `${path}[${index}]`;
}

/** Removes fields the schema does not declare; returns their paths. Mutates `value`. */
export function prune(value: unknown, schema: SchemaNode | undefined, path = ''): string[] {
  const dropped: string[] = [];
  pruneInto(value, schema, path, dropped);
  return dropped;
}

function pruneInto(value: unknown, schema: SchemaNode | undefined, path: string, dropped: string[]): void {
  if (schema === undefined) return;
  if (isObject(value)) {
    const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
    const additional = schema.additionalProperties;
    for (const key of Object.keys(value)) {
      const declared = schema.properties?.[key];
      if (declared !== undefined) {
        pruneInto(value[key], declared, child(path, key), dropped);
      } else if (isObject(additional)) {
        pruneInto(value[key], additional, item(path, key), dropped);
      } else if (!preserve && additional !== true) {
        Reflect.deleteProperty(value, key);
        dropped.push(child(path, key));
      }
    }
    return;
  }
  if (Array.isArray(value) && schema.items !== undefined) {
    value.forEach((element, i) => {
      pruneInto(element, schema.items, item(path, i), dropped);
    });
  }
}

/** Fills in declared defaults and drops nulls where the schema does not allow them. Mutates `value`. */
export function applyDefaults(value: unknown, schema: SchemaNode | undefined): void {
  if (schema === undefined) return;
  if (isObject(value)) {
    for (const [key, declared] of Object.entries(schema.properties ?? {})) {
      const missing = !Object.hasOwn(value, key) || value[key] === undefined || (value[key] === null && declared.nullable !== true);
      if (missing && declared.default !== undefined) value[key] = clone(declared.default);
      else if (value[key] === null && declared.nullable !== true) Reflect.deleteProperty(value, key);
      if (value[key] !== undefined) applyDefaults(value[key], declared);
    }
    if (isObject(schema.additionalProperties)) {
      for (const key of Object.keys(value)) applyDefaults(value[key], schema.additionalProperties);
    }
    return;
  }
  if (Array.isArray(value) && schema.items !== undefined) {
    for (const element of value) applyDefaults(element, schema.items);
  }
}

export function validate(value: unknown, schema: SchemaNode | undefined, path = ''): FieldIssue[] {
  const issues: FieldIssue[] = [];
  check(value, schema, path, issues);
  return issues;
}

const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function check(value: unknown, schema: SchemaNode | undefined, path: string, issues: FieldIssue[]): void {
  if (schema === undefined) return;
  const field = path === '' ? '<root>' : path;
  const invalid = (reason: IssueReason, message: string, decode = false): void => {
    issues.push({ field, reason, message, decode });
  };
  const bodyInvalid = (message: string): void => {
    invalid('FieldValueInvalid', `Invalid value: ${describeValue(value)}: ${field} in body ${message}`);
  };

  if (value === null) {
    if (schema.nullable === true || (schema.type === undefined && schema['x-kubernetes-preserve-unknown-fields'] === true)) return;
  }
  if (schema['x-kubernetes-int-or-string'] === true) {
    if (!(typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value)))) {
      invalid('FieldValueTypeInvalid', `Invalid value: "${jsonType(value)}": ${field} in body must be of type integer,string: "${jsonType(value)}"`, true);
    }
    return;
  }
  if (schema.type !== undefined && !hasType(value, schema.type)) {
    invalid('FieldValueTypeInvalid', `Invalid value: "${jsonType(value)}": ${field} in body must be of type ${schema.type}: "${jsonType(value)}"`, true);
    return;
  }
  if (schema.enum !== undefined && !schema.enum.some((allowed) => deepEqual(allowed, value))) {
    invalid('FieldValueNotSupported', `Unsupported value: ${describeValue(value)}: supported values: ${schema.enum.map(describeValue).join(', ')}`);
  }

  if (typeof value === 'string') checkString(value, schema, invalid, bodyInvalid);
  else if (typeof value === 'number') checkNumber(value, schema, bodyInvalid);
  else if (Array.isArray(value)) checkArray(value, schema, path, issues, invalid);
  else if (isObject(value)) checkObject(value, schema, path, issues, invalid);
}

type Report = (reason: IssueReason, message: string, decode?: boolean) => void;

function checkString(value: string, schema: SchemaNode, invalid: Report, bodyInvalid: (message: string) => void): void {
  // maxLength counts characters (code points), not UTF-16 units.
  let length = 0;
  for (const _ of value) length += 1;
  if (schema.minLength !== undefined && length < schema.minLength) bodyInvalid(`should be at least ${schema.minLength} chars long`);
  if (schema.maxLength !== undefined && length > schema.maxLength) invalid('FieldValueTooLong', `Too long: may not be more than ${schema.maxLength} bytes`);
  if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) bodyInvalid(`should match '${schema.pattern}'`);
  switch (schema.format) {
    case 'date-time':
      if (!DATE_TIME.test(value) || Number.isNaN(Date.parse(value))) bodyInvalid('must be of type date-time');
      break;
    case 'byte':
      if (!BASE64.test(value)) bodyInvalid('must be of type byte');
      break;
    case 'micro-time':
      // metav1.MicroTime is decoded with the fixed layout RFC3339Micro: exactly six fractional
      // digits. JavaScript's Date#toISOString() has three, and a real server refuses it.
      if (!MICRO_TIME.test(value)) {
        invalid('FieldValueInvalid', `parsing time ${describeValue(value)} as "2006-01-02T15:04:05.000000Z07:00": a MicroTime needs exactly six fractional digits (use client-node's V1MicroTime, not Date)`, true);
      }
      break;
    default:
      break;
  }
}

function checkNumber(value: number, schema: SchemaNode, bodyInvalid: (message: string) => void): void {
  if (schema.minimum !== undefined) {
    if (schema.exclusiveMinimum === true ? value <= schema.minimum : value < schema.minimum) {
      bodyInvalid(`should be greater than ${schema.exclusiveMinimum === true ? '' : 'or equal to '}${schema.minimum}`);
    }
  }
  if (schema.maximum !== undefined) {
    if (schema.exclusiveMaximum === true ? value >= schema.maximum : value > schema.maximum) {
      bodyInvalid(`should be less than ${schema.exclusiveMaximum === true ? '' : 'or equal to '}${schema.maximum}`);
    }
  }
  const multipleOf = schema.multipleOf;
  if (typeof multipleOf === 'number' && multipleOf > 0 && !Number.isInteger(value / multipleOf)) bodyInvalid(`should be a multiple of ${multipleOf}`);
}

function checkArray(value: unknown[], schema: SchemaNode, path: string, issues: FieldIssue[], invalid: Report): void {
  if (schema.minItems !== undefined && value.length < schema.minItems) {
    invalid('FieldValueInvalid', `Invalid value: ${value.length}: ${path} in body should have at least ${schema.minItems} items`);
  }
  if (schema.maxItems !== undefined && value.length > schema.maxItems) invalid('FieldValueTooMany', `Too many: ${value.length}: must have at most ${schema.maxItems} items`);
  value.forEach((element, i) => {
    check(element, schema.items, item(path, i), issues);
  });
  const listType = schema['x-kubernetes-list-type'];
  const keys = schema['x-kubernetes-list-map-keys'];
  if (listType === 'set' || schema.uniqueItems === true) {
    value.forEach((element, i) => {
      if (value.findIndex((other) => deepEqual(other, element)) < i) {
        issues.push({ field: item(path, i), reason: 'FieldValueDuplicate', message: `Duplicate value: ${describeValue(element)}`, decode: false });
      }
    });
  }
  if (listType === 'map' && keys !== undefined) {
    const keyOf = (element: unknown): Record<string, unknown> => Object.fromEntries(keys.map((k) => [k, isObject(element) ? element[k] : undefined]));
    value.forEach((element, i) => {
      if (value.findIndex((other) => deepEqual(keyOf(other), keyOf(element))) < i) {
        issues.push({ field: item(path, i), reason: 'FieldValueDuplicate', message: `Duplicate value: ${describeValue(keyOf(element))}`, decode: false });
      }
    });
  }
}

function checkObject(value: Record<string, unknown>, schema: SchemaNode, path: string, issues: FieldIssue[], invalid: Report): void {
  const count = Object.keys(value).length;
  if (schema.maxProperties !== undefined && count > schema.maxProperties) invalid('FieldValueTooMany', `Too many: ${count}: must have at most ${schema.maxProperties} items`);
  const minProperties = schema.minProperties;
  if (typeof minProperties === 'number' && count < minProperties) {
    invalid('FieldValueInvalid', `Invalid value: ${count}: ${path} in body should have at least ${minProperties} properties`);
  }
  for (const name of schema.required ?? []) {
    if (value[name] === undefined) issues.push({ field: child(path, name), reason: 'FieldValueRequired', message: 'Required value', decode: false });
  }
  for (const [key, element] of Object.entries(value)) {
    const declared = schema.properties?.[key];
    if (declared !== undefined) check(element, declared, child(path, key), issues);
    else if (isObject(schema.additionalProperties)) check(element, schema.additionalProperties, item(path, key), issues);
  }
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'object':
      return isObject(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    default:
      return true;
  }
}
