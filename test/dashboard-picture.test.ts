import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatValue, renderDashboard, type DashboardPicture, type Point, type Series, type Unit } from '../dashboards/render.ts';

// The README's picture of the Rollout dashboard (dashboards/picture.ts draws it from the demo's
// Prometheus): what a reader of the picture must be able to trust — every panel and legend is
// there, a hostile legend cannot inject markup, and an annotation sits at its time.

const FROM = 1_700_000_000;
const TO = FROM + 60;
const HOSTILE = '<script>alert("x")</script> & co';

function ramp(value: (s: number) => number | null): Point[] {
  return Array.from({ length: 61 }, (_, s) => [FROM + s, value(s)] as const);
}

function series(legend: string, color: string, value: (s: number) => number | null): Series {
  return { legend, color, lineWidth: 1, lineStyle: 'solid', fillOpacity: 10, points: ramp(value) };
}

const weight = (s: number): number => (s < 5 ? 0 : s < 20 ? 10 : s < 40 ? 30 : 0);

const picture: DashboardPicture = {
  title: 'ModelCanary rollout',
  uid: 'modelcanary-rollout',
  variables: [
    ['Namespace', 'ml-serving'],
    ['ModelCanary', 'recommender'],
  ],
  subject: 'recommender',
  from: FROM,
  to: TO,
  step: 1,
  panels: [
    { type: 'stat', title: 'Phase', gridPos: { x: 0, y: 0, w: 8, h: 4 }, unit: 'none', mapping: { '2': { text: 'Progressing', color: 'blue' }, '5': { text: 'RolledBack', color: 'orange' } }, colorMode: 'background', showName: false, fields: [{ name: 'phase', value: 5, color: 'green' }] },
    { type: 'stat', title: 'Canary weight', gridPos: { x: 8, y: 0, w: 8, h: 4 }, unit: 'percent', colorMode: 'value', showName: false, fields: [{ name: 'canary', value: 0, color: 'orange' }] },
    { type: 'state-timeline', title: 'Phase over time', gridPos: { x: 0, y: 4, w: 24, h: 4 }, mapping: { '2': { text: 'Progressing', color: 'blue' }, '5': { text: 'RolledBack', color: 'orange' } }, series: [series('phase', 'text', (s) => (s < 5 ? null : s < 40 ? 2 : 5))] },
    { type: 'timeseries', title: 'Canary weight', gridPos: { x: 0, y: 8, w: 16, h: 8 }, unit: 'percent', min: 0, max: 100, interpolation: 'stepAfter', series: [series('canary weight', 'orange', weight)] },
    { type: 'table', title: 'Step plan', gridPos: { x: 16, y: 8, w: 8, h: 8 }, columns: [{ name: 'Step', align: 'right' }, { name: 'Canary weight', align: 'right' }], rows: [['1', '10%'], ['2', '30%']] },
    { type: 'timeseries', title: 'Requests', gridPos: { x: 0, y: 16, w: 12, h: 8 }, unit: 'reqps', interpolation: 'linear', series: [series('stable (v7)', 'blue', (s) => 60 - weight(s) * 0.6), series(HOSTILE, 'orange', (s) => weight(s) * 0.6)] },
    { type: 'timeseries', title: '5xx ratio', gridPos: { x: 12, y: 16, w: 12, h: 8 }, unit: 'percentunit', min: 0, interpolation: 'linear', series: [series('canary (v8)', 'orange', (s) => (weight(s) === 0 ? null : s > 30 ? 0.25 : 0.001))] },
    { type: 'timeseries', title: 'Latency', gridPos: { x: 0, y: 24, w: 12, h: 8 }, unit: 'ms', interpolation: 'linear', series: [{ ...series('stable p50', 'blue', () => 40), lineStyle: 'dot' }, { ...series('stable p99', 'blue', () => 95), lineStyle: 'dash' }] },
  ],
  annotations: [
    { title: 'Started', color: 'blue', time: FROM + 5, timeEnd: FROM + 8 },
    { title: 'Rolled back', color: 'red', time: FROM + 40, timeEnd: FROM + 40 },
  ],
};

interface Element {
  name: string;
  attributes: Record<string, string>;
  children: Element[];
  text: string;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescape(raw: string): string {
  return raw.replace(/&(\w+);/g, (_whole, name: string) => {
    const entity = ENTITIES[name];
    assert.ok(entity !== undefined, `unknown entity &${name};`);
    return entity;
  });
}

/** Enough of an XML reader to prove the SVG well-formed: one root, every tag closed in order, attributes quoted, no stray `<` or `&`. */
function parseXml(xml: string): Element {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: Element[] = [];
  let root: Element | undefined;
  const tokens = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  for (const [, closing, name = '', attributeText = '', selfClosing, text, stray] of body.matchAll(tokens)) {
    assert.equal(stray, undefined, 'a "<" that starts no tag');
    const top = stack.at(-1);
    if (text !== undefined) {
      assert.doesNotMatch(text, /&(?!(amp|lt|gt|quot|apos);)/, 'an unescaped "&"');
      if (top === undefined) assert.match(text, /^\s*$/, 'text outside the root element');
      else top.text += unescape(text);
      continue;
    }
    if (closing === '/') {
      assert.equal(stack.pop()?.name, name, `</${name}> closes another element`);
      continue;
    }
    const attributes = Object.fromEntries([...attributeText.matchAll(/([\w:-]+)="([^"]*)"/g)].map(([, key = '', value = '']) => [key, unescape(value)]));
    const element: Element = { name, attributes, children: [], text: '' };
    if (top === undefined) {
      assert.equal(root, undefined, 'more than one root element');
      root = element;
    } else top.children.push(element);
    if (selfClosing !== '/') stack.push(element);
  }
  assert.deepEqual(stack.map((e) => e.name), [], 'unclosed elements');
  assert.ok(root !== undefined, 'no root element');
  return root;
}

function all(element: Element): Element[] {
  return [element, ...element.children.flatMap(all)];
}

function texts(element: Element): string[] {
  return all(element)
    .filter((e) => e.name === 'text' || e.name === 'title')
    .map((e) => e.text);
}

function panel(svg: Element, title: string, index = 0): Element {
  const found = all(svg).filter((e) => e.attributes.class === 'panel' && e.attributes['data-title'] === title)[index];
  assert.ok(found !== undefined, `no panel "${title}"`);
  return found;
}

const svgText = renderDashboard(picture);

test('the dashboard picture is one well-formed SVG, the same bytes for the same input, with no NaN coordinates', () => {
  const svg = parseXml(svgText);
  assert.equal(svg.name, 'svg');
  assert.equal(svg.attributes.xmlns, 'http://www.w3.org/2000/svg');
  assert.equal(svgText.split('<svg').length - 1, 1);
  assert.equal(svgText.split('</svg>').length - 1, 1);
  assert.doesNotMatch(svgText, /NaN|Infinity|undefined/);
  assert.equal(renderDashboard(structuredClone(picture)), svgText);
});

test('every panel is drawn with its title, and every series with its legend', () => {
  const svg = parseXml(svgText);
  const shown = texts(svg);
  for (const p of picture.panels) assert.ok(all(svg).some((e) => e.attributes['data-title'] === p.title) && shown.includes(p.title), `panel "${p.title}"`);
  const legends = all(svg).filter((e) => e.attributes.class === 'legend').map((e) => e.text);
  const expected = picture.panels.flatMap((p) => (p.type === 'timeseries' ? p.series.map((s) => s.legend) : []));
  assert.deepEqual(legends, expected);
  for (const text of ['RolledBack', 'Progressing', '0%', 'Step', '30%']) assert.ok(shown.includes(text), `"${text}" shown`);
});

test('a legend with markup in it is shown as text, never as markup', () => {
  assert.ok(!svgText.includes('<script'), 'no script element');
  assert.ok(svgText.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co'));
  assert.ok(texts(parseXml(svgText)).includes(HOSTILE));
});

test('the footer says the picture is a rendering, of which dashboard, ModelCanary and day', () => {
  assert.ok(
    texts(parseXml(svgText)).includes(
      "A rendering of the Grafana dashboard modelcanary-rollout from its own queries and the demo's Prometheus data (no Grafana server); recommender, 2023-11-14",
    ),
  );
});

test('each annotation is a line at its time across every time panel, labelled with its title', () => {
  const svg = parseXml(svgText);
  const timePanels: [string, number][] = [['Phase over time', 0], ['Canary weight', 1], ['Requests', 0], ['5xx ratio', 0], ['Latency', 0]];
  for (const [title, index] of timePanels) {
    const group = panel(svg, title, index);
    const plot = all(group).find((e) => e.attributes.class === 'plot');
    assert.ok(plot !== undefined, `a plot area in "${title}"`);
    const [x, width] = [Number(plot.attributes.x), Number(plot.attributes.width)];
    const lines = all(group).filter((e) => e.attributes.class === 'annotation');
    assert.equal(lines.length, picture.annotations.length, `annotations in "${title}"`);
    for (const annotation of picture.annotations) {
      const line = lines.find((l) => Number(l.attributes['data-time']) === annotation.time);
      assert.ok(line !== undefined, `${annotation.title} in "${title}"`);
      const expected = x + ((annotation.time - FROM) / (TO - FROM)) * width;
      assert.ok(Math.abs(Number(line.attributes.x1) - expected) <= 0.15, `${annotation.title} in "${title}" at x ${line.attributes.x1}, expected ${expected}`);
      assert.equal(line.attributes.x1, line.attributes.x2, 'a vertical line');
    }
    const labels = all(group).filter((e) => e.attributes.class === 'annotation-label').map((e) => e.text);
    assert.deepEqual(labels, ['Started', 'Rolled back']);
  }
});

test('value axes carry the panels’ units', () => {
  const svg = parseXml(svgText);
  const cases: { title: string; index?: number; unit: RegExp; includes: string }[] = [
    { title: 'Canary weight', index: 1, unit: /^\d+%$/, includes: '100%' },
    { title: 'Requests', unit: /^\d+ req\/s$/, includes: '60 req/s' },
    { title: '5xx ratio', unit: /^\d+%$/, includes: '20%' },
    { title: 'Latency', unit: /^\d+ ms$/, includes: '40 ms' },
  ];
  for (const c of cases) {
    const group = panel(svg, c.title, c.index);
    const ticks = all(group)
      .filter((e) => e.name === 'text' && e.attributes['text-anchor'] === 'end' && e.attributes.class === undefined)
      .map((e) => e.text)
      .filter((t) => !t.endsWith(' s'));
    assert.ok(ticks.length >= 2, `ticks in "${c.title}": ${ticks.join(', ')}`);
    for (const tick of ticks) assert.match(tick, c.unit, `a tick of "${c.title}"`);
    assert.ok(ticks.includes(c.includes), `"${c.title}" has a ${c.includes} tick: ${ticks.join(', ')}`);
  }
});

test('values are written in the units Grafana names', () => {
  const cases: [number, Unit, number | undefined, string][] = [
    [30, 'percent', undefined, '30%'],
    [0.25, 'percentunit', undefined, '25%'],
    [0.0013, 'percentunit', undefined, '0.130%'],
    [57.25, 'reqps', 0, '57 req/s'],
    [42.5, 'ms', undefined, '42.5 ms'],
    [1500, 'ms', undefined, '1.50 s'],
    [0.02, 'none', undefined, '0.0200'],
    [-0.0001, 'short', 2, '0.00'],
  ];
  for (const [value, unit, decimals, expected] of cases) assert.equal(formatValue(value, unit, decimals), expected, `${value} ${unit}`);
});
