// The patch formats a client can send: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).
// Strategic merge patch, which merges lists by key for built-in kinds, is approximated by merge
// patch; custom resources refuse it, as a real server does.

import { clone, deepEqual, isObject } from './json.ts';
import { badRequest, ApiError } from './status.ts';

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const result: Record<string, unknown> = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) Reflect.deleteProperty(result, key);
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

function patchFailure(message: string): ApiError {
  const error = badRequest(message);
  // A well-formed patch that cannot be applied is a 422 on a real server; a malformed one, a 400.
  return new ApiError({ ...error.status, code: 422, reason: 'Invalid' });
}

export function jsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let document = clone(target);
  for (const raw of operations) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') throw badRequest(`invalid JSON patch operation ${JSON.stringify(raw)}`);
    const operation: Operation = { op: raw.op, path: raw.path, ...(typeof raw.from === 'string' ? { from: raw.from } : {}), ...('value' in raw ? { value: raw.value } : {}) };
    document = apply(document, operation);
  }
  return document;
}

function apply(document: unknown, operation: Operation): unknown {
  switch (operation.op) {
    case 'add':
      return add(document, operation.path, clone(operation.value));
    case 'remove':
      return remove(document, operation.path).document;
    case 'replace': {
      if (operation.path === '') return clone(operation.value);
      get(document, operation.path);
      return add(remove(document, operation.path).document, operation.path, clone(operation.value));
    }
    case 'move': {
      const from = operation.from ?? '';
      const taken = remove(document, from);
      return add(taken.document, operation.path, taken.value);
    }
    case 'copy':
      return add(document, operation.path, clone(get(document, operation.from ?? '')));
    case 'test':
      if (!deepEqual(get(document, operation.path), operation.value)) throw patchFailure(`testing value ${operation.path} failed: test failed`);
      return document;
    default:
      throw badRequest(`Unexpected kind: ${operation.op}`);
  }
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw badRequest(`JSON pointer must be empty or start with a "/": ${path}`);
  return path
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(document: unknown, path: string): { parent: unknown; key: string } {
  const tokens = pointer(path);
  const key = tokens.pop();
  if (key === undefined) return { parent: undefined, key: '' };
  let parent = document;
  for (const token of tokens) parent = step(parent, token, path);
  return { parent, key };
}

function step(node: unknown, token: string, path: string): unknown {
  if (Array.isArray(node)) {
    const index = Number(token);
    if (!Number.isInteger(index) || index < 0 || index >= node.length) throw patchFailure(`doc is missing path: "${path}": missing value`);
    return node[index];
  }
  if (isObject(node) && Object.hasOwn(node, token)) return node[token];
  throw patchFailure(`doc is missing path: "${path}": missing value`);
}

function get(document: unknown, path: string): unknown {
  let node = document;
  for (const token of pointer(path)) node = step(node, token, path);
  return node;
}

function add(document: unknown, path: string, value: unknown): unknown {
  const { parent, key } = parentOf(document, path);
  if (path === '') return value;
  if (Array.isArray(parent)) {
    const index = key === '-' ? parent.length : Number(key);
    if (!Number.isInteger(index) || index < 0 || index > parent.length) throw patchFailure(`add operation does not apply: doc is missing path: "${path}": missing value`);
    parent.splice(index, 0, value);
  } else if (isObject(parent)) {
    parent[key] = value;
  } else {
    throw patchFailure(`add operation does not apply: doc is missing path: "${path}": missing value`);
  }
  return document;
}

function remove(document: unknown, path: string): { document: unknown; value: unknown } {
  const { parent, key } = parentOf(document, path);
  if (Array.isArray(parent)) {
    const index = Number(key);
    if (!Number.isInteger(index) || index < 0 || index >= parent.length) throw patchFailure(`remove operation does not apply: doc is missing path: "${path}": missing value`);
    const removed: unknown[] = parent.splice(index, 1);
    return { document, value: removed[0] };
  }
  if (isObject(parent) && Object.hasOwn(parent, key)) {
    const value = parent[key];
    Reflect.deleteProperty(parent, key);
    return { document, value };
  }
  throw patchFailure(`remove operation does not apply: doc is missing path: "${path}": missing value`);
}
