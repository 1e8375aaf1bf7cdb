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

test('a value cannot change the query, whatever it holds', () => {
  const hostile = ['a"} or vector(1) or x{a="', 'back\\slash', 'brace}{', 'new\nline', "quote'single", 'tab\there'];
  for (const model of hostile) {
    const inDouble = renderTemplate('x{m="{{ model }}"}', values({ model }));
    const inSingle = renderTemplate("x{m='{{ model }}'}", values({ model }));
    const bare = renderTemplate('label_replace(x, "m", {{ model }}, "", "")', values({ model }));
    // Each literal decodes back to exactly the value: JSON reads the double-quoted form as Go/PromQL does.
    assert.equal(JSON.parse(inDouble.slice('x{m='.length, -1)), model, inDouble);
    assert.equal(JSON.parse(bare.slice('label_replace(x, "m", '.length, -', "", "")'.length)), model, bare);
    // The single-quoted form, with its quotes swapped back, reads as JSON too.
    const single = inSingle.slice("x{m='".length, -2).replaceAll("\\'", "'").replaceAll('"', '\\"');
    assert.equal(JSON.parse(`"${single}"`), model, inSingle);
  }
  assert.throws(() => renderTemplate('x{m=`{{ model }}`}', values({ model: 'a`b' })), /raw string/);
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
