// Building PromQL safely: label matchers from exact values, and custom query templates whose
// substituted values cannot change the query, whatever quotes, backslashes, braces or
// newlines a model or version name holds.

import { formatDuration } from '../api/duration.ts';
import { isTemplateVariable, PLACEHOLDER_RE, type TemplateVariable } from '../api/template.ts';

/**
 * The content of a PromQL string literal. PromQL's lexer accepts the escapes \a \b \f \n \r
 * \t \v \\, \x, \u, \U, octal, and the escaped quote of the literal it is in (only that one),
 * so JSON's escaping fits a double-quoted literal and, with the quotes swapped, a single-quoted one.
 */
export function escapeString(value: string, quote: '"' | "'" = '"'): string {
  const json = JSON.stringify(value).slice(1, -1);
  return quote === '"' ? json : json.replaceAll('\\"', '"').replaceAll("'", "\\'");
}

/** A regular expression matching exactly these values, for a =~ matcher. */
export function alternation(values: Iterable<string>): string {
  return [...new Set(values)].sort().map((v) => v.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')).join('|');
}

/** `name="value",…` in a stable order, values escaped. */
export function renderMatchers(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((name) => `${name}="${escapeString(labels[name] ?? '')}"`)
    .join(',');
}

/** A PromQL duration for a window: whole seconds where possible, else milliseconds. */
export function promDuration(ms: number): string {
  return ms % 1000 === 0 ? formatDuration(ms) : `${Math.round(ms)}ms`;
}

export type TemplateValues = Record<Exclude<TemplateVariable, 'window' | 'labels'>, string> & { windowMs: number; labels: Readonly<Record<string, string>> };

/**
 * Substitutes the template variables of a custom query. String variables go in as string
 * literal content when the placeholder sits inside double quotes, and as a whole quoted
 * literal anywhere else, so a value can never close a string or a selector; {{ window }} is a
 * PromQL duration and {{ labels }} the measured version's matchers. Unknown variables were
 * refused by validation; one here is a programming error.
 */
export function renderTemplate(template: string, values: TemplateValues): string {
  let out = '';
  let last = 0;
  for (const match of template.matchAll(PLACEHOLDER_RE)) {
    const name = match[1] ?? '';
    const start = match.index;
    out += template.slice(last, start);
    last = start + match[0].length;
    if (!isTemplateVariable(name)) throw new Error(`unknown template variable "${name}"`);
    if (name === 'window') out += promDuration(values.windowMs);
    else if (name === 'labels') out += renderMatchers(values.labels);
    else out += literal(values[name], quoteAt(template, start));
  }
  return out + template.slice(last);
}

function literal(value: string, quote: string | undefined): string {
  if (quote === undefined) return `"${escapeString(value)}"`;
  if (quote === '"' || quote === "'") return escapeString(value, quote);
  // A raw string has no escapes: a value holding a backtick could end it.
  if (value.includes('`')) throw new Error(`cannot put ${JSON.stringify(value)} inside a \`raw string\`: use double quotes around the placeholder`);
  return value;
}

/** The quote character of the string literal that position `at` of a PromQL text lies in, if any. */
function quoteAt(text: string, at: number): string | undefined {
  let quote: string | undefined;
  for (let i = 0; i < at; i++) {
    const c = text[i];
    if (quote !== undefined) {
      if (c === '\\' && quote !== '`') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'" || c === '`') {
      quote = c;
    }
  }
  return quote;
}
