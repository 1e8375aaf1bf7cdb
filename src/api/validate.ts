// Turns zod's findings into problems a person can act on: the field path as written in
// YAML, what is wrong in our words, and the likely fix for a misspelt field or value.

import { z } from 'zod';
import { GROUP, KIND, ModelCanary } from './modelcanary.ts';
import { closest } from './suggest.ts';

export interface Problem {
  /** Field path as written in the manifest, such as spec.analysis.steps[2]. */
  path: string;
  /** The same path as keys and indices, for finding the place in a parsed document. */
  segments: (string | number)[];
  message: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

/** Checks a parsed manifest (one YAML document) as a ModelCanary. */
export function checkModelCanary(document: unknown): Checked<ModelCanary> {
  return checkAgainst(ModelCanary, document);
}

/**
 * What a document is, by its kind: a ModelCanary to check; a near miss to stop for (a kind
 * that is a misspelling of ModelCanary, or another kind in our API group: the API server
 * would refuse it, and a file meant as a rollout would silently do nothing); or a kind of
 * someone else's (Service, VirtualService), which is not ours to judge.
 */
export type KindCheck = { is: 'modelCanary' } | { is: 'other' } | { is: 'mistaken'; problem: Problem };

export function checkKind(apiVersion: unknown, kind: string): KindCheck {
  if (kind === KIND) return { is: 'modelCanary' };
  // kubectl's list kinds hold their objects in items; they are read as lists, not judged.
  if (kind === `${KIND}List`) return { is: 'other' };
  const problem = (message: string): KindCheck => ({ is: 'mistaken', problem: { path: 'kind', segments: ['kind'], message } });
  if (closest(kind, [KIND]) !== undefined) return problem(`${JSON.stringify(kind)}: did you mean ${KIND}?`);
  if (typeof apiVersion === 'string' && apiVersion.split('/')[0] === GROUP) return problem(`${JSON.stringify(kind)} is not a kind of ${GROUP}: its only kind is ${KIND}`);
  return { is: 'other' };
}

export function checkAgainst<S extends z.ZodType>(schema: S, input: unknown): Checked<z.output<S>> {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  const problems = result.error.issues.flatMap((issue) => describeIssue(schema, input, issue));
  return { ok: false, problems: dedupe(problems) };
}

export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else if (typeof part === 'string' && /^[A-Za-z_$][\w$]*$/.test(part)) text += text === '' ? part : `.${part}`;
    else text += `[${JSON.stringify(String(part))}]`;
  }
  return text === '' ? '(document)' : text;
}

function describeIssue(schema: z.ZodType, input: unknown, issue: z.core.$ZodIssue): Problem[] {
  const value = valueAt(input, issue.path);
  const at = (message: string, path: readonly PropertyKey[] = issue.path): Problem => ({
    path: formatPath(path),
    segments: path.map((p) => (typeof p === 'number' ? p : String(p))),
    message,
  });
  switch (issue.code) {
    case 'invalid_type':
      if (value === undefined) return [at('is required')];
      // A schema may word its own expectation ("must be a duration such as 30s").
      if (issue.message.startsWith('must ')) return [at(`${issue.message}, not ${describeValue(value)}`)];
      return [at(`must be ${typeWord(issue.expected)}, not ${describeValue(value)}`)];
    case 'too_big':
      return [at(sizeMessage('at most', 'less than', issue.origin, Number(issue.maximum), issue.inclusive !== false))];
    case 'too_small':
      if (issue.origin === 'string' && Number(issue.minimum) === 1) return [at('must not be empty')];
      return [at(sizeMessage('at least', 'greater than', issue.origin, Number(issue.minimum), issue.inclusive !== false))];
    case 'invalid_value':
      return [at(oneOf(issue.values.map(String), value))];
    case 'invalid_union': {
      const options = 'options' in issue && Array.isArray(issue.options) ? issue.options.map(String) : undefined;
      if (options === undefined) return [at('does not match any allowed shape')];
      if (value === undefined) return [at(`is required: one of ${options.join(', ')}`)];
      return [at(oneOf(options, value))];
    }
    case 'unrecognized_keys': {
      const known = knownKeys(schema, input, issue.path);
      return issue.keys.map((key) => {
        const guess = closest(key, known);
        return at(guess === undefined ? `unknown field${listKnown(known)}` : `unknown field (did you mean ${guess}?)`, [...issue.path, key]);
      });
    }
    case 'invalid_key':
      return [at(issue.issues[0]?.message ?? 'is not an allowed key')];
    case 'invalid_format':
      if (issue.format === 'url') return [at(issue.message.startsWith('must') ? issue.message : 'must be an http:// or https:// URL')];
      if (issue.format === 'datetime') return [at('must be an RFC 3339 time, such as 2026-05-01T12:00:00Z')];
      return [at(issue.message)];
    default:
      return [at(issue.message)];
  }
}

function listKnown(known: readonly string[]): string {
  return known.length === 0 ? '' : `; known fields: ${known.join(', ')}`;
}

function oneOf(allowed: readonly string[], value: unknown): string {
  const quoted = allowed.map((v) => JSON.stringify(v));
  const expected = allowed.length === 1 ? `must be ${quoted[0] ?? ''}` : `must be one of ${quoted.join(', ')}`;
  // With one allowed value, "did you mean" would only repeat it: show what was written instead.
  if (typeof value !== 'string' || allowed.length === 1) return `${expected}, not ${describeValue(value)}`;
  const guess = closest(value, allowed);
  return guess === undefined ? `${expected}, not ${describeValue(value)}` : `${expected} (did you mean ${guess}?)`;
}

function sizeMessage(inclusiveWord: string, exclusiveWord: string, origin: string, bound: number, inclusive: boolean): string {
  switch (origin) {
    case 'array':
      return `must have ${inclusiveWord} ${bound} ${bound === 1 ? 'item' : 'items'}`;
    case 'string':
      return `must be ${inclusiveWord} ${bound} ${bound === 1 ? 'character' : 'characters'} long`;
    case 'object':
      return `must have ${inclusiveWord} ${bound} ${bound === 1 ? 'entry' : 'entries'}`;
    default:
      return `must be ${inclusive ? inclusiveWord : exclusiveWord} ${bound}`;
  }
}

function typeWord(expected: string): string {
  switch (expected) {
    case 'int':
      return 'a whole number';
    case 'number':
      return 'a number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
    case 'record':
      return 'a mapping';
    default:
      return expected;
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return typeof value;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/** The field names the schema allows for the object at `path`, following the input through unions. */
function knownKeys(schema: z.ZodType, input: unknown, path: readonly PropertyKey[]): string[] {
  let current: z.ZodType | undefined = schema;
  let data = input;
  for (let depth = 0; current !== undefined; ) {
    current = unwrap(current, data);
    if (depth === path.length) break;
    const key = path[depth];
    data = valueAt(data, [key ?? '']);
    depth++;
    if (current instanceof z.ZodObject) current = (current.shape as Record<string, z.ZodType>)[String(key)];
    else if (current instanceof z.ZodArray) current = current.element as z.ZodType;
    else if (current instanceof z.ZodRecord) current = current.valueType as z.ZodType;
    else current = undefined;
  }
  return current instanceof z.ZodObject ? Object.keys(current.shape) : [];
}

/** Strips wrappers (optional, defaults, pipes) and picks the union member the data selects. */
function unwrap(schema: z.ZodType, data: unknown): z.ZodType {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodOptional || current instanceof z.ZodNullable || current instanceof z.ZodDefault || current instanceof z.ZodPrefault) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      current = current.in as z.ZodType;
    } else if (current instanceof z.ZodDiscriminatedUnion) {
      const discriminator = current.def.discriminator;
      const tag = valueAt(data, [discriminator]);
      const options = current.options as z.ZodType[];
      const match = options.find((o) => o instanceof z.ZodObject && valueAt(o.shape, [discriminator, 'value']) === tag);
      if (match === undefined) return current;
      current = match;
    } else {
      return current;
    }
  }
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
