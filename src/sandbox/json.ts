// Plain-JSON helpers: every object the sandbox stores or serves is a JSON value, cloned at each
// boundary so that no caller can change the store by keeping a reference.

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function clone<T>(value: T): T {
  return structuredClone(value);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a).filter((k) => a[k] !== undefined);
    const otherKeys = Object.keys(b).filter((k) => b[k] !== undefined);
    return keys.length === otherKeys.length && keys.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** The value as Kubernetes prints it in a message: strings quoted, everything else as JSON. */
export function describeValue(value: unknown): string {
  // JSON.stringify answers undefined for undefined and functions, whatever its declared type says.
  const text = JSON.stringify(value) as string | undefined;
  return text ?? 'null';
}

/** The JSON type name of a value, as the API server names it in "must be of type" messages. */
export function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}
