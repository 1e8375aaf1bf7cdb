import type { z } from 'zod';

/** A place in a manifest and what is wrong there. */
export interface Violation {
  path: (string | number)[];
  message: string;
}

/**
 * A cross-field rule stated once for both checkers: `cel` is what the API server evaluates
 * (x-kubernetes-validations, with `self` bound to the annotated value), `violations` is the
 * same rule in TypeScript for `validate` and the controller.
 */
export interface Rule<T> {
  /** Left out when a structural keyword (such as x-kubernetes-list-map-keys) already enforces the rule in the API server. */
  cel?: string;
  message: string;
  /** CEL fieldPath, relative to the annotated value (e.g. ".steps"). */
  fieldPath?: string;
  violations: (value: T) => Violation[];
}

/** The common rule shape: one predicate, reported at one place. */
export function rule<T>(
  cel: string,
  message: string,
  holds: (value: T) => boolean,
  path: (string | number)[] = [],
): Rule<T> {
  const fieldPath = path.length > 0 ? path.map((p) => `.${p}`).join('') : undefined;
  return { cel, message, fieldPath, violations: (value) => (holds(value) ? [] : [{ path, message }]) };
}

export interface Annotations<T> {
  description: string;
  rules?: Rule<T>[];
  /** Kubernetes schema extensions such as x-kubernetes-list-type. */
  extensions?: Record<string, unknown>;
}

/**
 * Attaches a description (required on every field: it becomes the CRD's and the README's
 * reference) and rules to a schema. Rules are added before the metadata because each zod
 * check returns a new schema instance and metadata belongs to one instance.
 */
export function annotate<S extends z.ZodType>(schema: S, annotations: Annotations<z.output<S>>): S {
  const rules = annotations.rules ?? [];
  const checked =
    rules.length === 0
      ? schema
      : schema.superRefine((value, ctx) => {
          for (const r of rules) {
            for (const v of r.violations(value)) ctx.addIssue({ code: 'custom', path: v.path, message: v.message });
          }
        });
  const validations = rules.flatMap((r) => (r.cel === undefined ? [] : [{
    rule: r.cel,
    message: r.message,
    ...(r.fieldPath === undefined ? {} : { fieldPath: r.fieldPath }),
  }]));
  return checked.meta({
    description: annotations.description,
    ...(validations.length > 0 ? { 'x-kubernetes-validations': validations } : {}),
    ...annotations.extensions,
  });
}
