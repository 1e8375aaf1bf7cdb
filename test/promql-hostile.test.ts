// Custom query templates against the real Prometheus: a few hundred seeded hostile values,
// built from every character that once could close a string, end a comment or add syntax,
// must come back from Prometheus exactly as they went in, and never as extra series.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { seeded, type Random } from '../src/analysis/random.ts';
import { renderTemplate, type TemplateValues } from '../src/metrics/promql.ts';
import { PROMETHEUS_MISSING, startPrometheus, type RunningPrometheus } from './helpers/prometheus.ts';

/** Skip where Prometheus is not installed, but never on CI, where it must fail loudly. */
const SKIP = PROMETHEUS_MISSING !== undefined && process.env.CI !== 'true' ? PROMETHEUS_MISSING : undefined;

/** 2026-01-01T00:00:00Z: no data is needed, only a fixed evaluation time. */
const TIME = '1767225600';
const EXPLOIT = 'x"}) or vector(42) #';

/**
 * What a value is built from. No `$`: label_replace expands $1 in its replacement, which is
 * label_replace's own meaning, not an escape from the literal.
 */
const PIECES = [
  '"', "'", '`', '\\', '\n', '\r', '\r\n', '#', '}', '{', ')', '(', ']', ',', '=~', ' ', '\t',
  '\u2028', '\u2029', '\u0085', '\0', '\u007f', '\u202e', '\uFEFF', '\uFFFD', '🙂', 'é', 'a', 'x', '1',
  ' or vector(42)', ' # ', '\\"', "\\'", '"}', "'}", '{{ model }}', '\\u0041', '\\n',
];

function hostile(random: Random): string {
  const length = 1 + Math.floor(random.next() * 10);
  let value = '';
  for (let i = 0; i < length; i++) value += PIECES[Math.floor(random.next() * PIECES.length)] ?? '';
  return value;
}

const random = seeded(12);
const VALUES = [EXPLOIT, ...PIECES, ...Array.from({ length: 300 }, () => hostile(random))];

/** Each template answers one sample of value 1: labelled v = the value, or unlabelled where the value sits in a comment. */
const TEMPLATES: { template: string; labelled: boolean }[] = [
  { template: 'label_replace(vector(1), "v", "{{ model }}", "", "")', labelled: true },
  { template: "label_replace(vector(1), \"v\", '{{ model }}', \"\", \"\")", labelled: true },
  { template: 'label_replace(vector(1), "v", {{ model }}, "", "")', labelled: true },
  { template: 'label_replace(vector(1), "v", `{{ model }}`, "", "")', labelled: true },
  { template: "label_replace(vector(1), # it's \"{{ model }}\"\r\n  \"v\", \"{{ model }}\", \"\", \"\") # `{{ model }}", labelled: true },
  { template: "vector(1) # it's {{ model }}\n", labelled: false },
  { template: 'vector(1) # "{{ model }}', labelled: false },
  { template: "vector(1) # `{{ model }}\r+ 0 # '{{ model }}", labelled: false },
];

const values = (model: string): TemplateValues => ({ model, version: 'v', namespace: 'n', name: 'x', stableVersion: 's', canaryVersion: 'c', windowMs: 30_000, labels: {} });

interface Answer {
  status: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
  error?: string;
}

let prometheus: RunningPrometheus | undefined;
before(async () => {
  if (SKIP === undefined) prometheus = await startPrometheus({});
});
after(() => prometheus?.stop());

async function evaluate(query: string): Promise<Answer> {
  const response = await fetch(`${prometheus?.url ?? ''}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query, time: TIME }) });
  return (await response.json()) as Answer;
}

test('hostile values reach Prometheus exactly as they are, in every position, and add nothing', { skip: SKIP }, async () => {
  const cases = VALUES.flatMap((value) => TEMPLATES.map((t) => ({ value, ...t })));
  let evaluated = 0;
  // A few at a time: Prometheus answers in parallel, and the whole table stays within seconds.
  for (let i = 0; i < cases.length; i += 16) {
    await Promise.all(
      cases.slice(i, i + 16).map(async ({ value, template, labelled }) => {
        const label = `${template} with ${JSON.stringify(value)}`;
        if (template.includes('`{{ model }}`') && (value.includes('`') || value.includes('\uFFFD'))) {
          assert.throws(() => renderTemplate(template, values(value)), /cannot go inside a `raw string`/, label);
          return;
        }
        const query = renderTemplate(template, values(value));
        const answer = await evaluate(query);
        evaluated++;
        assert.equal(answer.status, 'success', `${label}: ${JSON.stringify(query)}: ${answer.error ?? ''}`);
        assert.equal(answer.data?.resultType, 'vector', label);
        assert.deepEqual(
          answer.data.result.map((s) => ({ metric: s.metric, value: s.value[1] })),
          [{ metric: labelled ? { v: value } : {}, value: '1' }],
          `${label}: ${JSON.stringify(query)}`,
        );
      }),
    );
  }
  assert.ok(evaluated > VALUES.length * (TEMPLATES.length - 1), `${evaluated} queries evaluated`);
});

test("Prometheus ends a comment at \\n and \\r only, not at Unicode's line separators", { skip: SKIP }, async () => {
  // The premise of rendering values into comments as escaped text on one line.
  const cases = [
    { end: '\n', value: '42' },
    { end: '\r', value: '42' },
    { end: '\u2028', value: '1' },
    { end: '\u2029', value: '1' },
    { end: '\u0085', value: '1' },
  ];
  for (const { end, value } of cases) {
    const answer = await evaluate(`vector(1) # x${end}+ 41`);
    assert.deepEqual(answer.data?.result.map((s) => s.value[1]), [value], JSON.stringify(end));
  }
});

test('the exploit of issue 12 no longer returns 42', { skip: SKIP }, async () => {
  // The apostrophe in the comment once made the escaper think the placeholder sat in '…'.
  const query = renderTemplate("# the model's own series, or 1\nsum(x{model=\"{{ model }}\"}) or vector(1)", values(EXPLOIT));
  const answer = await evaluate(query);
  assert.deepEqual(answer.data?.result.map((s) => [s.metric, s.value[1]]), [[{}, '1']], JSON.stringify(query));
});
