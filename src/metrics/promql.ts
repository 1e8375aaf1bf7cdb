// Building PromQL safely: label matchers from exact values, and custom query templates whose
// substituted values cannot change the query, whatever quotes, backslashes, braces, line
// breaks or comment markers a model or version name holds.

import { formatDuration } from '../api/duration.ts';
import { isTemplateVariable, PLACEHOLDER_RE, type TemplateVariable } from '../api/template.ts';
import type { Metric } from '../api/modelcanary.ts';
import { INFERENCE_COUNTERS, latencyFamily, SECONDS_TO_MS, type PresetType } from '../api/presets.ts';

/**
 * Characters written as \u or \U escapes in a string literal: controls, invisible format
 * characters (bidi overrides, zero-width joiners), the Unicode line and paragraph separators,
 * and U+FFFD, which Prometheus's lexer reads as an invalid rune. Prometheus ends lines only
 * at \n and \r, but an escaped form also survives every log, terminal and editor it is shown in.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\uFFFD]/u;
const NAMED_ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * The content of a PromQL string literal quoted with `quote`. PromQL's lexer accepts the
 * escapes \a \b \f \n \r \t \v \\, \x, \u, \U, octal, and the escaped quote of the literal it
 * is in (only that one); every escape written here is complete, so the content never ends in
 * a dangling backslash, holds no raw line break and decodes to exactly `value`.
 */
export function escapeString(value: string, quote: '"' | "'" = '"'): string {
  let out = '';
  for (const char of value) {
    if (char === quote) out += `\\${quote}`;
    else out += NAMED_ESCAPES[char] ?? (UNPRINTABLE.test(char) ? codePointEscape(char) : char);
  }
  return out;
}

function codePointEscape(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  return code > 0xffff ? `\\U${code.toString(16).padStart(8, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
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
 * Substitutes the template variables of a custom query. Where each placeholder sits is read
 * with PromQL's own lexical rules, and its value is written so that the lexer stays where it
 * was: literal content inside "…" or '…'; the text itself inside a `raw string` (refused when
 * it holds a backtick or U+FFFD); a whole "…" literal in code; and inside a # comment, the
 * escaped text, which holds no line break and so can never end the comment. {{ window }} is
 * a PromQL duration and {{ labels }} the measured version's matchers (refused in a string).
 * A placeholder after text the lexer rejects, or right after an unfinished escape sequence,
 * is refused too: there is no telling what its value would become. Refusals are thrown
 * errors; unknown variables were refused by validation, so one here is a programming error.
 */
export function renderTemplate(template: string, values: TemplateValues): string {
  let out = '';
  let last = 0;
  let state: Lexical = CODE;
  for (const match of template.matchAll(PLACEHOLDER_RE)) {
    const name = match[1] ?? '';
    const text = template.slice(last, match.index);
    out += text;
    last = match.index + match[0].length;
    state = lex(state, text);
    if (!isTemplateVariable(name)) throw new Error(`unknown template variable "${name}"`);
    out += render(name, values, positionOf(state, name));
  }
  return out + template.slice(last);
}

type Quote = '"' | "'";
type Position = { in: 'code' } | { in: 'comment' } | { in: 'raw' } | { in: 'string'; quote: Quote };

function render(name: TemplateVariable, values: TemplateValues, at: Position): string {
  // Digits and unit letters: the same in every position.
  if (name === 'window') return promDuration(values.windowMs);
  if (name === 'labels') return matchersAt(values.labels, at);
  const value = values[name];
  // A lone surrogate is not text: it cannot be sent as UTF-8, and Prometheus refuses its escape.
  if (!value.isWellFormed()) throw new Error(`{{ ${name} }} holds a lone UTF-16 surrogate, which is not text`);
  switch (at.in) {
    case 'code':
      return `"${escapeString(value)}"`;
    case 'string':
      return escapeString(value, at.quote);
    case 'comment':
      return escapeString(value);
    case 'raw': {
      // A raw string has no escapes: a backtick would end it, and Prometheus's lexer refuses U+FFFD in it.
      const refused = value.includes('`') ? 'a backtick' : value.includes('\uFFFD') ? 'U+FFFD' : undefined;
      if (refused !== undefined) throw new Error(`{{ ${name} }} holds ${refused} and cannot go inside a \`raw string\`: use double quotes around the placeholder`);
      return value;
    }
  }
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function matchersAt(labels: Readonly<Record<string, string>>, at: Position): string {
  if (at.in === 'string' || at.in === 'raw') throw new Error('{{ labels }} is a list of label matchers (name="value",…) and cannot go inside a string: put it inside braces, as in x{ {{ labels }} }');
  const bad = Object.keys(labels).find((name) => !LABEL_NAME.test(name));
  if (bad !== undefined) throw new Error(`{{ labels }} holds ${JSON.stringify(bad)}, which is not a Prometheus label name`);
  return renderMatchers(labels);
}

// The lexer's state between two characters, after Prometheus's promql/parser/lex.go: "…" and
// '…' strings with backslash escapes that end at their own quote and may not hold a line break,
// `raw` strings with no escapes, and # comments that run to \n or \r, outside strings anywhere
// (inside braces too). Escapes are followed to their last digit, so that a placeholder can be
// told from one that would complete an escape. `invalid` is where Prometheus's lexer reports an
// error, so that the query can never run.
type Escape = { base: 8 | 16; digitsLeft: number };
type Lexical = Position | { in: 'string'; quote: Quote; escape: 'open' | Escape } | { in: 'invalid'; reason: string };

const CODE: Lexical = { in: 'code' };
const COMMENT: Lexical = { in: 'comment' };
const RAW: Lexical = { in: 'raw' };
const SIMPLE_ESCAPES = new Set(['a', 'b', 'f', 'n', 'r', 't', 'v', '\\']);
const OCTAL_DIGIT = /^[0-7]$/;
const HEX_DIGIT = /^[0-9a-fA-F]$/;
const NUMERIC_ESCAPES: Readonly<Record<string, Escape>> = { x: { base: 16, digitsLeft: 2 }, u: { base: 16, digitsLeft: 4 }, U: { base: 16, digitsLeft: 8 } };

function lex(from: Lexical, text: string): Lexical {
  let state = from;
  // By code point, as Go's lexer reads runes.
  for (const char of text) {
    if (state.in === 'invalid') return state;
    state = step(state, char);
  }
  return state;
}

function step(state: Lexical, char: string): Lexical {
  switch (state.in) {
    case 'invalid':
      return state;
    case 'code':
      if (char === '#') return COMMENT;
      if (char === '"' || char === "'") return { in: 'string', quote: char };
      return char === '`' ? RAW : state;
    case 'comment':
      return char === '\n' || char === '\r' ? CODE : state;
    case 'raw':
      return char === '`' ? CODE : state;
    case 'string':
      return 'escape' in state ? stepEscape(state.quote, state.escape, char) : stepString(state.quote, char);
  }
}

function stepString(quote: Quote, char: string): Lexical {
  if (char === quote) return CODE;
  if (char === '\\') return { in: 'string', quote, escape: 'open' };
  if (char === '\n') return { in: 'invalid', reason: `a line break inside a ${quote}…${quote} string` };
  return { in: 'string', quote };
}

function stepEscape(quote: Quote, escape: 'open' | Escape, char: string): Lexical {
  if (escape === 'open') {
    if (SIMPLE_ESCAPES.has(char) || char === quote) return { in: 'string', quote };
    if (OCTAL_DIGIT.test(char)) return { in: 'string', quote, escape: { base: 8, digitsLeft: 2 } };
    const numeric = NUMERIC_ESCAPES[char];
    if (numeric !== undefined) return { in: 'string', quote, escape: numeric };
    return { in: 'invalid', reason: char === '\n' ? 'a backslash before a line break in a string' : `an unknown escape sequence \\${char} in a string` };
  }
  if (!(escape.base === 8 ? OCTAL_DIGIT : HEX_DIGIT).test(char)) return { in: 'invalid', reason: 'a malformed escape sequence in a string' };
  return escape.digitsLeft === 1 ? { in: 'string', quote } : { in: 'string', quote, escape: { base: escape.base, digitsLeft: escape.digitsLeft - 1 } };
}

function positionOf(state: Lexical, name: string): Position {
  if (state.in === 'invalid') throw new Error(`the query is not valid PromQL before {{ ${name} }}: ${state.reason}`);
  if ('escape' in state) throw new Error(`{{ ${name} }} follows an unfinished escape sequence in a string: its value would complete the escape; remove the backslash before the placeholder`);
  return state;
}

/** One exporter's series for a preset: its bucket counts by `le`, or its request and error counters. */
export interface PresetQueries {
  /** Cumulative bucket counts by le, in the exporter's unit. */
  buckets?: string | undefined;
  requests?: string | undefined;
  errors?: string | undefined;
  /** Multiplies the exporter's bucket bounds into milliseconds. */
  boundScale: number;
  /** The reason given when the series are missing: which exporter and labels were expected. */
  missing: string;
}

/**
 * increase() of the first of `names` that has series for `matchers`, summed by `by`: an older
 * name (vLLM's time_per_output_token, the endpoint picker's inference_model_*) is read only
 * where the newer is absent, so that an exporter emitting both is not counted twice.
 */
export function firstFamilyIncrease(names: readonly string[], matchers: Readonly<Record<string, string>>, windowMs: number, by: string | undefined): string {
  const grouping = by === undefined ? 'sum' : `sum by (${by})`;
  return names.map((name) => `${grouping} (increase(${name}{${renderMatchers(matchers)}}[${promDuration(windowMs)}]))`).join(' or ');
}

type PresetMetric = Extract<Metric, { type: PresetType }>;

/**
 * The queries of a preset for one version, over `windowMs` before the evaluation time. Latency
 * presets read the exporter's histogram by le (its +Inf bucket is the count of finished
 * requests); inferenceErrorRate reads the endpoint picker's request and error counters.
 */
export function presetQueries(metric: PresetMetric, labels: Readonly<Record<string, string>>, windowMs: number): PresetQueries {
  const within = ` in the last ${promDuration(windowMs)}`;
  if (metric.type === 'inferenceErrorRate') {
    const [name] = INFERENCE_COUNTERS.requests;
    return {
      requests: firstFamilyIncrease(INFERENCE_COUNTERS.requests, labels, windowMs, undefined),
      errors: firstFamilyIncrease(INFERENCE_COUNTERS.errors, labels, windowMs, undefined),
      boundScale: 1,
      missing: `no ${name}{${renderMatchers(labels)}} series${within} (nor the inference_model_* of releases before v1.1): is ${INFERENCE_COUNTERS.exporter} scraped, and is the version's target model ${describeLabels(labels)}? Set the metric's labels to select it otherwise`,
    };
  }
  const family = latencyFamily(metric.type, metric.source);
  const [name] = family.names;
  const older = family.names.slice(1).map((n) => `${n}_bucket`);
  const hint = metric.source !== 'endpointPicker' ? `does vLLM serve this version as ${describeLabels(labels)} (--served-model-name)?` : `is the version's target model ${describeLabels(labels)}?`;
  return {
    buckets: firstFamilyIncrease(family.names.map((n) => `${n}_bucket`), labels, windowMs, 'le'),
    boundScale: SECONDS_TO_MS,
    missing: `no ${name ?? ''}_bucket{${renderMatchers(labels)}} series${within}${older.length === 0 ? '' : ` (nor ${older.join(', ')})`}: is ${family.exporter} scraped, and ${hint} Set the metric's labels to select it otherwise`,
  };
}

function describeLabels(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}="${escapeString(v)}"`)
    .join(', ');
}
