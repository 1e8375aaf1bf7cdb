// The Prometheus text exposition format 0.0.4, as prom-client's registry.metrics() writes it:
// enough to read counters and histograms straight from an exporter when no Prometheus runs.
// Comments (# HELP, # TYPE, and any other) carry nothing a count needs, so they are skipped.

export interface ExpositionSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INFINITY = /^[+-]?inf(inity)?$/i;
const TIMESTAMP = /^-?\d+$/;
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\', '"': '"', n: '\n' };

/** Every sample of an exposition, in order. A malformed line throws, naming its number. */
export function parseExposition(text: string): ExpositionSample[] {
  const samples: ExpositionSample[] = [];
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const content = line.trimStart();
    if (content === '' || content.startsWith('#')) continue;
    try {
      samples.push(parseSample(content));
    } catch (error) {
      throw new Error(`exposition line ${index + 1}: ${error instanceof Error ? error.message : String(error)}: ${JSON.stringify(line)}`, { cause: error });
    }
  }
  return samples;
}

function parseSample(line: string): ExpositionSample {
  const name = METRIC_NAME.exec(line)?.[0];
  if (name === undefined) throw new Error('expected a metric name');
  let rest = line.slice(name.length);
  let labels: Record<string, string> = {};
  if (rest.trimStart().startsWith('{')) {
    const parsed = parseLabels(rest.trimStart().slice(1));
    labels = parsed.labels;
    rest = parsed.rest;
  }
  if (!/^[ \t]/.test(rest)) throw new Error(rest === '' ? 'missing value' : `expected a space before the value, found ${JSON.stringify(rest[0])}`);
  const fields = rest.trim().split(/[ \t]+/);
  const [value, timestamp, ...extra] = fields;
  if (value === undefined || value === '') throw new Error('missing value');
  if (timestamp !== undefined && !TIMESTAMP.test(timestamp)) throw new Error(`invalid timestamp ${JSON.stringify(timestamp)}`);
  if (extra.length > 0) throw new Error('unexpected text after the timestamp');
  return { name, labels, value: parseValue(value) };
}

/** The labels after the opening brace, and what follows the closing one. */
function parseLabels(text: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let at = skipBlanks(text, 0);
  while (text[at] !== '}') {
    const labelName = LABEL_NAME.exec(text.slice(at))?.[0];
    if (labelName === undefined) throw new Error(at >= text.length ? 'unterminated label set' : `expected a label name at column ${at + 1} of the label set`);
    if (Object.hasOwn(labels, labelName)) throw new Error(`duplicate label ${labelName}`);
    at = skipBlanks(text, at + labelName.length);
    if (text[at] !== '=') throw new Error(`expected "=" after label ${labelName}`);
    at = skipBlanks(text, at + 1);
    if (text[at] !== '"') throw new Error(`expected a quoted value for label ${labelName}`);
    const quoted = parseQuoted(text, at + 1, labelName);
    labels[labelName] = quoted.value;
    at = skipBlanks(text, quoted.end);
    if (text[at] === ',') at = skipBlanks(text, at + 1);
    else if (text[at] !== '}') throw new Error(at >= text.length ? 'unterminated label set' : `expected "," or "}" after label ${labelName}`);
  }
  return { labels, rest: text.slice(at + 1) };
}

/** A label value from just after its opening quote; `end` is just after the closing quote. */
function parseQuoted(text: string, start: number, labelName: string): { value: string; end: number } {
  let value = '';
  for (let at = start; at < text.length; at++) {
    const char = text[at] ?? '';
    if (char === '"') return { value, end: at + 1 };
    if (char !== '\\') {
      value += char;
      continue;
    }
    const escaped = ESCAPES[text[at + 1] ?? ''];
    if (escaped === undefined) throw new Error(`invalid escape sequence in the value of label ${labelName}`);
    value += escaped;
    at++;
  }
  throw new Error(`unterminated value of label ${labelName}`);
}

function parseValue(text: string): number {
  if (FLOAT.test(text)) return Number(text);
  if (INFINITY.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (text.toLowerCase() === 'nan') return NaN;
  throw new Error(`invalid value ${JSON.stringify(text)}`);
}

function skipBlanks(text: string, at: number): number {
  let next = at;
  while (text[next] === ' ' || text[next] === '\t') next++;
  return next;
}
