// Label and field selectors, in the grammar of k8s.io/apimachinery's labels.Parse and
// fields.ParseSelector. A selector that does not parse is a 400, as on a real server.

import { badRequest } from './status.ts';

type LabelRequirement =
  | { key: string; op: 'exists' | 'notExists' }
  | { key: string; op: 'in' | 'notIn'; values: string[] }
  | { key: string; op: 'gt' | 'lt'; value: number };

export type LabelSelector = (labels: Record<string, string> | undefined) => boolean;

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export function parseLabelSelector(text: string | null): LabelSelector {
  if (text === null || text.trim() === '') return () => true;
  const requirements = splitTopLevel(text).map((part) => parseRequirement(part.trim(), text));
  return (labels) => requirements.every((r) => matches(r, labels ?? {}));
}

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of text) {
    if (char === '(') depth += 1;
    if (char === ')') depth -= 1;
    if (char === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

function parseRequirement(part: string, whole: string): LabelRequirement {
  const fail = (why: string): never => {
    throw badRequest(`unable to parse requirement: ${why} in selector ${JSON.stringify(whole)}`);
  };
  const key = (k: string): string => {
    const trimmed = k.trim();
    if (!KEY.test(trimmed)) fail(`invalid label key "${trimmed}"`);
    return trimmed;
  };
  const value = (v: string): string => {
    const trimmed = v.trim();
    if (!VALUE.test(trimmed)) fail(`invalid label value: "${trimmed}"`);
    return trimmed;
  };
  if (part === '') fail('found \'\', expected: identifier');
  if (part.startsWith('!')) return { key: key(part.slice(1)), op: 'notExists' };
  const set = /^(.+?)\s+(in|notin)\s*\((.*)\)$/.exec(part);
  if (set !== null) {
    const values = (set[3] ?? '').split(',').map(value);
    return { key: key(set[1] ?? ''), op: set[2] === 'in' ? 'in' : 'notIn', values };
  }
  const binary = /^(.+?)\s*(==|!=|=|>|<)\s*(.*)$/.exec(part);
  if (binary !== null) {
    const [, k = '', op = '', v = ''] = binary;
    if (op === '>' || op === '<') {
      const n = Number(v.trim());
      if (!Number.isInteger(n)) fail(`for 'Gt', 'Lt' operators, the value must be an integer`);
      return { key: key(k), op: op === '>' ? 'gt' : 'lt', value: n };
    }
    return { key: key(k), op: op === '!=' ? 'notIn' : 'in', values: [value(v)] };
  }
  return { key: key(part), op: 'exists' };
}

function matches(r: LabelRequirement, labels: Record<string, string>): boolean {
  const present = Object.hasOwn(labels, r.key);
  const actual = labels[r.key];
  switch (r.op) {
    case 'exists':
      return present;
    case 'notExists':
      return !present;
    case 'in':
      return actual !== undefined && r.values.includes(actual);
    case 'notIn':
      return actual === undefined || !r.values.includes(actual);
    case 'gt':
    case 'lt': {
      const n = Number(actual);
      if (actual === undefined || !Number.isInteger(n)) return false;
      return r.op === 'gt' ? n > r.value : n < r.value;
    }
  }
}

export interface FieldRequirement {
  field: string;
  value: string;
  equal: boolean;
}

/** Parses `a=b,c!=d`; `\,` `\=` and `\\` escape. */
export function parseFieldSelector(text: string | null): FieldRequirement[] {
  if (text === null || text.trim() === '') return [];
  const requirements: FieldRequirement[] = [];
  let current = '';
  const parts: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i] ?? '';
    if (char === '\\' && i + 1 < text.length) {
      current += char + (text[i + 1] ?? '');
      i += 1;
    } else if (char === ',') {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  for (const part of parts) {
    const match = /^(.*?)(==|!=|=)(.*)$/s.exec(unescapedOperators(part));
    if (match === null) throw badRequest(`invalid selector: '${text}'; can't understand '${part}'`);
    const [, field = '', op = '', value = ''] = match;
    requirements.push({ field: field.trim(), value: unescape(value), equal: op !== '!=' });
  }
  return requirements;
}

const HIDDEN_EQUALS = '\uE000';
const HIDDEN_BANG = '\uE001';

/** Escaped operator characters must not split a requirement: hide them until after the split. */
function unescapedOperators(part: string): string {
  return part.replaceAll('\\=', HIDDEN_EQUALS).replaceAll('\\!', HIDDEN_BANG);
}

function unescape(value: string): string {
  return value.replaceAll(HIDDEN_EQUALS, '=').replaceAll(HIDDEN_BANG, '!').replace(/\\(.)/g, '$1');
}
