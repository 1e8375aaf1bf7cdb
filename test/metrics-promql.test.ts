import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alternation, escapeString, promDuration, renderMatchers, renderTemplate, type TemplateValues } from '../src/metrics/promql.ts';

const values = (over: Partial<TemplateValues> = {}): TemplateValues => ({
  model: 'fraud-detector',
  version: 'v2',
  namespace: 'ml-serving',
  name: 'fraud',
  stableVersion: 'v1',
  canaryVersion: 'v2',
  windowMs: 90_000,
  labels: { destination_canonical_revision: 'v2', destination_canonical_service: 'fraud-detector' },
  ...over,
});

test('templates substitute every variable', () => {
  const query = 'sum(rate(x{model="{{ model }}",v="{{version}}",ns="{{ namespace }}",{{ labels }}}[{{ window }}])) / on() y{c="{{ canaryVersion }}",s="{{ stableVersion }}",n="{{ name }}"}';
  assert.equal(
    renderTemplate(query, values()),
    'sum(rate(x{model="fraud-detector",v="v2",ns="ml-serving",destination_canonical_revision="v2",destination_canonical_service="fraud-detector"}[1m30s])) / on() y{c="v2",s="v1",n="fraud"}',
  );
});

/** Values that tried to close a string, end a comment or add syntax, one dangerous thing each. */
const HOSTILE = [
  'x"}) or vector(42) #',
  'a"} or vector(1) or x{a="',
  "it's",
  '"',
  "'",
  '`',
  '\\',
  '\\\\',
  '\\"',
  "\\'",
  'new\nline',
  'carriage\rreturn',
  'crlf\r\n+ vector(42)',
  '# not a comment',
  '}',
  ')',
  'x\u2028y\u2029z\u0085',
  'nul\0byte',
  'bidi\u202eevil',
  'replacement\uFFFD',
  'emoji 🙂',
  'del\u007f',
  '{{ model }}',
  '$1',
  '',
];

/** A placeholder in each lexical position of PromQL, with the comments and quotes that once misled the escaper. */
const POSITIONS = [
  { position: 'double-quoted', template: 'x{m="{{ model }}"}' },
  { position: 'single-quoted', template: "x{m='{{ model }}'}" },
  { position: 'raw string', template: 'x{m=`{{ model }}`}' },
  { position: 'bare', template: 'label_replace(x, "m", {{ model }}, "", "")' },
  { position: 'in a comment', template: 'x # {{ model }}\n+ y' },
  { position: 'in a comment at the end', template: 'x # {{ model }}' },
  { position: 'in a comment inside braces', template: 'x{a="b" # {{ model }}\n, c="d"}' },
  { position: "after a comment holding '", template: "x # it's\n+ y{m=\"{{ model }}\"}" },
  { position: 'after a comment holding "', template: "x # say \"hi\n+ y{m='{{ model }}'}" },
  { position: 'after a comment holding `', template: 'x # `raw\n+ label_replace(y, "m", {{ model }}, "", "")' },
  { position: 'after a comment ended by \\r', template: "x # it's\r+ y{m=\"{{ model }}\"}" },
  { position: 'after a # inside a string', template: "x{m=\"it's # no comment\"} + y{n='{{ model }}'}" },
  { position: 'after an escaped quote', template: 'x{m="a\\"b{{ model }}"}' },
  { position: 'after an escaped backslash', template: 'x{m="a\\\\"} + label_replace(y, "m", {{ model }}, "", "")' },
  { position: 'after a backslash in a raw string', template: 'x{m=`a\\`} + y{n="{{ model }}"}' },
  { position: 'multi-line, CRLF', template: "x # it's\r\n+ y{m=\"{{ model }}\"}\r\n# and {{ model }}\r\n+ z{n='{{ model }}'}" },
  { position: 'several variables', template: "x{m=\"{{ model }}\",v='{{ version }}'} # {{ model }} {{ version }}\n+ {{ model }}" },
];

type Token = { string: string } | { comment: true } | { code: string };

/**
 * The tokens of a query by the rules of Prometheus's lexer (promql/parser/lex.go), string
 * literals decoded; every other character is one code token. Throws where the lexer would.
 */
function tokens(query: string): Token[] {
  // By code point, as Go's lexer reads runes.
  const chars = Array.from(query);
  const out: Token[] = [];
  for (let i = 0; i < chars.length; ) {
    const c = chars[i] ?? '';
    if (c === '#') {
      while (i < chars.length && chars[i] !== '\n' && chars[i] !== '\r') i++;
      out.push({ comment: true });
    } else if (c === '"' || c === "'") {
      const [value, next] = quoted(chars, i + 1, c);
      out.push({ string: value });
      i = next;
    } else if (c === '`') {
      const end = chars.indexOf('`', i + 1);
      if (end < 0) throw new Error(`unterminated raw string in ${JSON.stringify(query)}`);
      out.push({ string: chars.slice(i + 1, end).join('') });
      i = end + 1;
    } else {
      if (!' \t\n\r'.includes(c)) out.push({ code: c });
      i++;
    }
  }
  return out;
}

const SIMPLE: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

function quoted(chars: string[], from: number, quote: string): [string, number] {
  let value = '';
  for (let i = from; ; ) {
    const c = chars[i++];
    if (c === undefined || c === '\n') throw new Error('unterminated quoted string');
    if (c === quote) return [value, i];
    if (c !== '\\') {
      value += c;
      continue;
    }
    const e = chars[i++] ?? '';
    const digits = e === 'u' ? 4 : e === 'U' ? 8 : 0;
    if (SIMPLE[e] !== undefined) value += SIMPLE[e];
    else if (e === quote) value += quote;
    else if (digits > 0 && new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(chars.slice(i, i + digits).join(''))) {
      const code = Number.parseInt(chars.slice(i, i + digits).join(''), 16);
      if (code > 0x10ffff || (code >= 0xd800 && code < 0xe000)) throw new Error(`invalid code point \\${e}${code.toString(16)}`);
      value += String.fromCodePoint(code);
      i += digits;
    } else throw new Error(`unknown escape sequence \\${e}`);
  }
}

const NEUTRAL = 'N3utral';

test('a value changes nothing but its own literal, in every position', () => {
  for (const { position, template } of POSITIONS) {
    // The neutral rendering tells where each value lands: in which string, or in a comment.
    const expected = (model: string): Token[] =>
      tokens(renderTemplate(template, values({ model: NEUTRAL, version: NEUTRAL }))).map((t) => ('string' in t ? { string: t.string.replaceAll(NEUTRAL, model) } : t));
    for (const model of HOSTILE) {
      const label = `${position} × ${JSON.stringify(model)}`;
      if (template.includes('`{{') && model.includes('`')) {
        assert.throws(() => renderTemplate(template, values({ model })), /holds a backtick and cannot go inside a `raw string`/, label);
        continue;
      }
      if (template.includes('`{{') && model.includes('\uFFFD')) {
        assert.throws(() => renderTemplate(template, values({ model })), /holds U\+FFFD/, label);
        continue;
      }
      const query = renderTemplate(template, values({ model, version: model }));
      assert.deepEqual(tokens(query), expected(model), `${label}: ${JSON.stringify(query)}`);
    }
  }
});

test('a value in a comment is its escaped text on the same line, so it can never end the comment', () => {
  const exploit = 'x"}) or vector(42) #';
  assert.equal(renderTemplate("vector(1) # it's {{ model }}\n", values({ model: exploit })), "vector(1) # it's x\\\"}) or vector(42) #\n");
  assert.equal(renderTemplate('vector(1) # {{ model }}', values({ model: 'a\nvector(42)\r\u2028\u2029' })), 'vector(1) # a\\nvector(42)\\r\\u2028\\u2029');
  // The exploit of the issue: the apostrophe in the comment no longer opens a string for the escaper.
  assert.equal(
    renderTemplate("x{m=\"{{ model }}\"} # it's\n+ y{m=\"{{ model }}\"}", values({ model: exploit })),
    "x{m=\"x\\\"}) or vector(42) #\"} # it's\n+ y{m=\"x\\\"}) or vector(42) #\"}",
  );
});

test('placeholders whose value would become syntax are refused with a reason', () => {
  const cases = [
    { template: 'x{m=`{{ model }}`}', model: 'a`b', error: /\{\{ model \}\} holds a backtick and cannot go inside a `raw string`: use double quotes/ },
    { template: 'x{m="a\\{{ model }}"}', model: 'v', error: /\{\{ model \}\} follows an unfinished escape sequence/ },
    { template: 'x{m="a\\u12{{ model }}"}', model: '34', error: /unfinished escape sequence/ },
    { template: "x{m='\\0{{ model }}'}", model: '12', error: /unfinished escape sequence/ },
    { template: 'x{m="a\n{{ model }}"}', model: 'v', error: /not valid PromQL before \{\{ model \}\}: a line break inside a "…" string/ },
    { template: 'x{m="a\\q"} + y{n="{{ model }}"}', model: 'v', error: /not valid PromQL before \{\{ model \}\}: an unknown escape sequence \\q/ },
    { template: 'x{m="{{ labels }}"}', model: 'v', error: /\{\{ labels \}\} is a list of label matchers .* cannot go inside a string/ },
    { template: 'x{m="{{ model }}"}', model: 'lone \uD800 surrogate', error: /lone UTF-16 surrogate/ },
  ];
  for (const c of cases) assert.throws(() => renderTemplate(c.template, values({ model: c.model })), c.error, c.template);
  assert.throws(() => renderTemplate('x{ {{ labels }} }', values({ labels: { 'a="b"} or vector(1) #': 'x' } })), /not a Prometheus label name/);
  // Complete escapes before a placeholder are fine.
  assert.equal(renderTemplate('x{m="\\\\{{ model }}\\u0041"}', values({ model: '"' })), 'x{m="\\\\\\"\\u0041"}');
});

test('matchers and regular expressions are escaped', () => {
  assert.equal(renderMatchers({ b: 'x"y', a: 'p\\q' }), 'a="p\\\\q",b="x\\"y"');
  assert.equal(alternation(['v1.2', 'v1', 'a|b', 'v1']), 'a\\|b|v1|v1\\.2');
  assert.equal(escapeString('line\nbreak'), 'line\\nbreak');
  assert.equal(escapeString(`it's "x"`, "'"), `it\\'s "x"`);
});

test('windows are PromQL durations', () => {
  assert.equal(promDuration(30_000), '30s');
  assert.equal(promDuration(90_000), '1m30s');
  assert.equal(promDuration(1_500), '1500ms');
});
