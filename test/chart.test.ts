import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate, type SimulationResult, type TimelineEntry } from '../src/analysis/simulator.ts';
import { renderChart } from '../src/cli/chart.ts';
import { loadScenarios, recommended } from '../bench/scenarios.ts';

// The chart of `modelcanary simulate --svg`: what a person opening the file must see, and
// that any SVG viewer can open it at all (well-formed XML, no NaN coordinates).

const policy = recommended();

function run(name: string, seed = 1, rename?: string): SimulationResult {
  const scenario = loadScenarios().find((s) => s.name === name);
  assert.ok(scenario !== undefined, `no scenario ${name}`);
  return simulate(policy.spec, rename === undefined ? scenario : { ...scenario, name: rename }, { seed });
}

interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  /** The element's own character data, references resolved. */
  text: string;
}

const NAME = /^[A-Za-z_:][\w.:-]*$/;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescape(raw: string, where: string): string {
  return raw.replace(/&([^;&]*);?/g, (whole, body: string) => {
    assert.ok(whole.endsWith(';'), `unterminated reference in ${where}: ${whole}`);
    if (body.startsWith('#x')) return String.fromCodePoint(parseInt(body.slice(2), 16));
    if (body.startsWith('#')) return String.fromCodePoint(parseInt(body.slice(1), 10));
    const entity = ENTITIES[body];
    assert.ok(entity !== undefined, `unknown entity &${body}; in ${where}`);
    return entity;
  });
}

function isXmlChar(ch: string): boolean {
  const code = ch.codePointAt(0) ?? 0;
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || code >= 0x10000;
}

/** A strict little XML reader: enough to prove well-formedness of what renderChart writes. */
function parseXml(xml: string): XmlElement {
  for (const ch of xml) assert.ok(isXmlChar(ch), `character U+${(ch.codePointAt(0) ?? 0).toString(16)} is not allowed in XML`);
  let rest = xml.replace(/^<\?xml[^?]*\?>/, '');
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (rest !== '') {
    const lt = rest.indexOf('<');
    const text = lt < 0 ? rest : rest.slice(0, lt);
    assert.doesNotMatch(text, /]]>/);
    const top = stack.at(-1);
    if (top === undefined) assert.match(text, /^\s*$/, 'text outside the root element');
    else top.text += unescape(text, `<${top.name}>`);
    if (lt < 0) break;
    rest = rest.slice(lt);
    if (rest.startsWith('<!--')) {
      const end = rest.indexOf('-->');
      assert.ok(end > 0, 'unterminated comment');
      rest = rest.slice(end + 3);
      continue;
    }
    const gt = rest.indexOf('>');
    assert.ok(gt > 0, 'unterminated tag');
    const tag = rest.slice(1, gt);
    rest = rest.slice(gt + 1);
    if (tag.startsWith('/')) {
      const open = stack.pop();
      assert.equal(tag.slice(1).trim(), open?.name, 'mismatched end tag');
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const match = /^(\S+)([\s\S]*?)$/.exec(selfClosing ? tag.slice(0, -1) : tag);
    assert.ok(match !== null, `empty tag <${tag}>`);
    const [, name = '', attributeText = ''] = match;
    assert.match(name, NAME);
    const element: XmlElement = { name, attributes: {}, children: [], text: '' };
    const attributes = /\s+([^\s=]+)\s*=\s*("[^"<]*"|'[^'<]*')/gy;
    let consumed = 0;
    for (let a = attributes.exec(attributeText); a !== null; a = attributes.exec(attributeText)) {
      const [whole, key = '', quoted = ''] = a;
      assert.match(key, NAME);
      assert.ok(!(key in element.attributes), `duplicate attribute ${key} on <${name}>`);
      element.attributes[key] = unescape(quoted.slice(1, -1), `${name}@${key}`);
      consumed += whole.length;
    }
    assert.match(attributeText.slice(consumed), /^\s*$/, `malformed attributes on <${name}>: ${attributeText}`);
    const parent = stack.at(-1);
    if (parent === undefined) {
      assert.equal(root, undefined, 'more than one root element');
      root = element;
    } else parent.children.push(element);
    if (!selfClosing) stack.push(element);
  }
  assert.equal(stack.length, 0, `unclosed elements: ${stack.map((e) => e.name).join(', ')}`);
  assert.ok(root !== undefined, 'no root element');
  return root;
}

function all(element: XmlElement): XmlElement[] {
  return [element, ...element.children.flatMap(all)];
}

function withClass(svg: XmlElement, name: string, className: string): XmlElement[] {
  return all(svg).filter((e) => e.name === name && (e.attributes.class ?? '').split(' ').includes(className));
}

const cases = [
  { scenario: 'healthy', title: /^healthy · seed 1 · promoted at \d/, marker: 'promote', label: 'promoted', absent: 'rollback' },
  { scenario: 'error-spike-at-10', title: /^error-spike-at-10 · seed 1 · rolled back at \d/, marker: 'rollback', label: 'rolled back', absent: 'promote' },
  { scenario: 'latency-regression', title: /^latency-regression · seed 1 · rolled back at \d/, marker: 'rollback', label: 'rolled back', absent: 'promote' },
  { scenario: 'no-data', title: /^no-data · seed 1 · no decision by 30m \(still at 10 %\)$/, marker: undefined, label: undefined, absent: 'rollback' },
];

for (const c of cases) {
  test(`chart of ${c.scenario}: a well-formed SVG titled with the scenario and its outcome, and its decisions marked`, () => {
    const svg = parseXml(renderChart(run(c.scenario)));
    assert.equal(svg.name, 'svg');
    assert.equal(svg.attributes.xmlns, 'http://www.w3.org/2000/svg');
    const [title] = withClass(svg, 'text', 'title');
    assert.match(title?.text ?? '', c.title);
    assert.match(all(svg).find((e) => e.name === 'title')?.text ?? '', c.title, 'the title a viewer shows for the file');
    if (c.marker !== undefined) {
      assert.equal(withClass(svg, 'line', c.marker).length, 1, `one ${c.marker} line`);
      assert.deepEqual(withClass(svg, 'text', c.marker).map((e) => e.text), [c.label]);
    }
    assert.equal(withClass(svg, 'line', c.absent).length, 0, `no ${c.absent} marker`);
  });
}

test('a chart marks each step the canary advanced to', () => {
  const svg = parseXml(renderChart(run('healthy')));
  assert.deepEqual(withClass(svg, 'text', 'advance').map((e) => e.text), ['→ 30 %', '→ 50 %']);
});

test('intervals without traffic leave no NaN or Infinity in the chart, and say that nothing was measured', () => {
  for (const name of ['no-data', 'low-traffic']) {
    const text = renderChart(run(name));
    assert.ok(run(name).timeline.some((e) => Number.isNaN(e.measured.canary.p99Ms)), `${name} has intervals without canary traffic`);
    assert.doesNotMatch(text, /NaN|Infinity/, name);
    parseXml(text);
  }
  const svg = parseXml(renderChart(run('no-data')));
  assert.equal(all(svg).filter((e) => e.name === 'text' && e.text.includes('nothing measured')).length, 2, 'both measurement panels say so');
  assert.equal(withClass(svg, 'path', 'errorRate').length, 0, 'no error-rate line drawn at zero');
});

function entry(atSeconds: number, canaryErrorRate: number): TimelineEntry {
  const canaryRequests = Number.isNaN(canaryErrorRate) ? 0 : 100;
  return {
    atSeconds,
    phase: 'Progressing',
    weight: 10,
    action: 'hold',
    reason: 'holding',
    measured: { stable: { requests: 900, errorRate: 0.01, p99Ms: 200 }, canary: { requests: canaryRequests, errorRate: canaryErrorRate, p99Ms: canaryErrorRate * 10_000 } },
    verdicts: [],
  };
}

test('an interval without canary traffic breaks the canary lines instead of dropping them to zero', () => {
  const result: SimulationResult = {
    scenario: 'gap',
    seed: 1,
    intervalSeconds: 30,
    startWeight: 10,
    outcome: 'timeout',
    endedAtSeconds: 90,
    finalWeight: 10,
    requests: { stable: 2700, canary: 200 },
    errors: { stable: 27, canary: 4 },
    excessCanaryErrors: 2,
    timeline: [entry(30, 0.02), entry(60, NaN), entry(90, 0.02)],
    skippedMetrics: [],
  };
  const svg = parseXml(renderChart(result));
  for (const field of ['errorRate', 'p99Ms']) {
    const [canary] = withClass(svg, 'path', field).filter((p) => p.attributes.class?.includes('canary') === true);
    const [stable] = withClass(svg, 'path', field).filter((p) => p.attributes.class?.includes('stable') === true);
    assert.equal(canary?.attributes.d?.match(/M/g)?.length, 2, `${field}: canary drawn in two pieces around the gap`);
    assert.equal(stable?.attributes.d?.match(/M/g)?.length, 1, `${field}: stable drawn unbroken`);
    const heights = new Set(canary.attributes.d.match(/-?[\d.]+(?=H)/g));
    assert.equal(heights.size, 1, `${field}: both canary pieces at the same value, none at zero`);
  }
});

test('a scenario name with markup in it is escaped, and shown as written', () => {
  const name = 'a <b> & "c" \'d\'';
  const text = renderChart(run('healthy', 1, name));
  assert.ok(!text.includes(name), 'the raw name does not appear');
  assert.ok(text.includes('a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;'));
  const svg = parseXml(text);
  assert.ok(withClass(svg, 'text', 'title')[0]?.text.startsWith(`${name} · seed 1 · promoted`));
});

test('the same result renders to the same bytes', () => {
  for (const name of ['healthy', 'latency-regression', 'low-traffic']) {
    const first = renderChart(run(name, 3));
    assert.equal(renderChart(run(name, 3)), first, name);
  }
  const result = run('noisy-stable');
  assert.equal(renderChart(result), renderChart(result));
});
