// Variables of custom PromQL templates. The metrics provider substitutes them (escaped for
// PromQL string literals); validation rejects any other name so that a typo fails at
// `validate` time, not as a broken query in the middle of a rollout.

export const TEMPLATE_VARIABLES = {
  model: 'spec.model',
  version: 'the version being measured (run once for stable, once for canary)',
  namespace: "the ModelCanary's namespace",
  name: "the ModelCanary's name",
  window: 'the metric window as a PromQL duration, e.g. 30s',
  stableVersion: 'spec.stable.version',
  canaryVersion: 'spec.canary.version',
  labels: "the measured version's label matchers, e.g. destination_canonical_revision=\"v2\",…",
} as const;

export type TemplateVariable = keyof typeof TEMPLATE_VARIABLES;

export const TEMPLATE_VARIABLE_NAMES = Object.keys(TEMPLATE_VARIABLES) as TemplateVariable[];

/** Matches one `{{ name }}` placeholder; group 1 is the name. Spaces and tabs may pad the name. */
export const PLACEHOLDER_RE = /\{\{[ \t]*([^{}]*?)[ \t]*\}\}/g;

/**
 * A whole template in which every "{{" opens a known variable. Written for both JavaScript
 * and RE2 (CEL's regex engine in the API server), so that validate and the CRD agree, and as
 * one linear match: a CEL loop over the placeholders would exceed the API server's cost limit.
 */
export const TEMPLATE_PATTERN = `^([^{]|\\{[^{]|\\{$|\\{\\{[ \\t]*(${Object.keys(TEMPLATE_VARIABLES).join('|')})[ \\t]*\\}\\})*$`;

/** Names used in a template, in order of first use. */
export function placeholdersIn(template: string): string[] {
  return [...new Set([...template.matchAll(PLACEHOLDER_RE)].map((m) => m[1] ?? ''))];
}

export function isTemplateVariable(name: string): name is TemplateVariable {
  return Object.hasOwn(TEMPLATE_VARIABLES, name);
}
