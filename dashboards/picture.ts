// The picture of the Rollout dashboard in the README, made without a Grafana server: runs
// `modelcanary demo --keep` in this process, waits until both rollouts have ended, asks the
// demo's Prometheus the dashboard's own queries (its panels' and its annotations') for the
// recommender rollout over the demo's time range, and draws the result with render.ts.
//
//   node dashboards/picture.ts [--out docs/rollout-dashboard.svg] [--save FILE] [--replay FILE]
//
// --save keeps Prometheus's answers as JSON; --replay draws from such a file, without the demo.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { CLASSIC_PALETTE, renderDashboard, type Annotation, type DashboardPicture, type GridPos, type Mapping, type PanelData, type Point, type Series, type StatField, type Unit } from './render.ts';

const ROOT = join(import.meta.dirname, '..');
const DASHBOARD_FILE = join(ROOT, 'dashboards/modelcanary-rollout.json');
const DEFAULT_OUT = join(ROOT, 'docs/rollout-dashboard.svg');

/** The dashboard's variables for the demo's recommender, as Grafana would resolve them. */
const VARIABLES = { namespace: 'ml-serving', modelcanary: 'recommender', model: 'recommender', stable: 'v7', canary: 'v8', metric: 'error-rate' } as const;
/** The variables in the bar above the panels, as the dashboard labels the visible ones. */
const VARIABLE_BAR = [
  ['Namespace', VARIABLES.namespace],
  ['ModelCanary', VARIABLES.modelcanary],
] as const;
/** The demo's Prometheus scrapes every second; the Grafana datasource would say so (`timeInterval`). */
const SCRAPE_SECONDS = 1;
const STEP_SECONDS = 1;
/** After the summary, long enough for Prometheus to scrape the end and the rate windows to cover it. */
const SETTLE_MS = 6_000;

/**
 * The panels drawn, by type and title, and where. The top rows are the dashboard's own places;
 * the "Analysis" panel (repeated per metric, here error-rate) moves up beside Latency in place of
 * "Checks by verdict", and the rows below (checks and evidence) are left out.
 */
const DRAWN: readonly { type: string; title: string; gridPos?: GridPos }[] = [
  { type: 'stat', title: 'Phase' },
  { type: 'stat', title: 'Step' },
  { type: 'stat', title: 'Canary weight' },
  { type: 'stat', title: 'Inconclusive checks' },
  { type: 'stat', title: 'Held without evidence' },
  { type: 'stat', title: 'Decisions' },
  { type: 'state-timeline', title: 'Phase over time' },
  { type: 'timeseries', title: 'Canary weight' },
  { type: 'table', title: 'Step plan' },
  { type: 'timeseries', title: 'Requests' },
  { type: 'timeseries', title: '5xx ratio' },
  { type: 'timeseries', title: 'Latency' },
  { type: 'timeseries', title: 'Analysis: $metric', gridPos: { x: 12, y: 24, w: 12, h: 8 } },
];

// The dashboard JSON, as far as the picture reads it.
const GridPosJson = z.object({ x: z.number(), y: z.number(), w: z.number(), h: z.number() });
const TargetJson = z.looseObject({ refId: z.string(), expr: z.string(), legendFormat: z.string().optional(), instant: z.boolean().optional() });
const ColorJson = z.looseObject({ mode: z.string(), fixedColor: z.string().optional() });
const LineStyleJson = z.looseObject({ fill: z.enum(['solid', 'dash', 'dot']) });
const PropertyJson = z.looseObject({ id: z.string(), value: z.unknown() });
const OverrideJson = z.looseObject({ matcher: z.looseObject({ id: z.string(), options: z.string() }), properties: z.array(PropertyJson) });
const MappingJson = z.looseObject({ type: z.literal('value'), options: z.record(z.string(), z.looseObject({ text: z.string(), color: z.string() })) });
const ThresholdsJson = z.looseObject({ steps: z.array(z.looseObject({ value: z.number().nullable(), color: z.string() })) });
const CustomJson = z.looseObject({ lineWidth: z.number().optional(), fillOpacity: z.number().optional(), lineInterpolation: z.string().optional(), lineStyle: LineStyleJson.optional() });
const DefaultsJson = z.looseObject({
  unit: z.string().optional(),
  min: z.number().optional(),
  max: z.number().optional(),
  decimals: z.number().optional(),
  mappings: z.array(MappingJson).optional(),
  thresholds: ThresholdsJson.optional(),
  color: ColorJson.optional(),
  custom: CustomJson.optional(),
});
const TransformationJson = z.looseObject({ id: z.string(), options: z.looseObject({ renameByName: z.record(z.string(), z.string()).optional(), excludeByName: z.record(z.string(), z.boolean()).optional() }) });
const PanelJson = z.looseObject({
  type: z.string(),
  title: z.string(),
  gridPos: GridPosJson,
  targets: z.array(TargetJson).default([]),
  fieldConfig: z.looseObject({ defaults: DefaultsJson, overrides: z.array(OverrideJson) }).default({ defaults: {}, overrides: [] }),
  options: z.looseObject({ colorMode: z.string().optional(), textMode: z.string().optional() }).default({}),
  transformations: z.array(TransformationJson).default([]),
});
type PanelJson = z.infer<typeof PanelJson>;
const AnnotationJson = z.looseObject({ name: z.string(), enable: z.boolean(), iconColor: z.string(), expr: z.string().optional(), titleFormat: z.string().optional() });
const DashboardJson = z.looseObject({ uid: z.string(), title: z.string(), panels: z.array(PanelJson), annotations: z.looseObject({ list: z.array(AnnotationJson) }) });
type DashboardJson = z.infer<typeof DashboardJson>;

// Prometheus's HTTP API answers, where they enter.
const Sample = z.tuple([z.number(), z.string()]);
const Labels = z.record(z.string(), z.string());
const PromAnswer = z.union([
  z.object({
    status: z.literal('success'),
    data: z.discriminatedUnion('resultType', [
      z.object({ resultType: z.literal('matrix'), result: z.array(z.object({ metric: Labels, values: z.array(Sample) })) }),
      z.object({ resultType: z.literal('vector'), result: z.array(z.object({ metric: Labels, value: Sample })) }),
      z.object({ resultType: z.literal('scalar'), result: Sample }),
    ]),
  }),
  z.object({ status: z.literal('error'), errorType: z.string(), error: z.string() }),
]);

/** One series Prometheus answered: its labels and its points, NaN and ±Inf as null. */
const Frame = z.object({ labels: Labels, points: z.array(z.tuple([z.number(), z.number().nullable()])) });
type Frame = z.infer<typeof Frame>;
/** What Prometheus answered to every query the picture asked: what --save writes and --replay reads. */
const Capture = z.object({
  from: z.number(),
  to: z.number(),
  step: z.number(),
  panels: z.array(z.object({ key: z.string(), refId: z.string(), expr: z.string(), frames: z.array(Frame) })),
  annotations: z.array(z.object({ name: z.string(), expr: z.string(), frames: z.array(Frame) })),
});
type Capture = z.infer<typeof Capture>;

const UNITS: readonly Unit[] = ['percent', 'percentunit', 'reqps', 'ms', 'short', 'none'];
// Grafana's thresholds when a panel sets none.
const DEFAULT_THRESHOLDS = [
  { value: null, color: 'green' },
  { value: 80, color: 'red' },
];

function panelKey(panel: { type: string; title: string }): string {
  return `${panel.type}:${panel.title}`;
}

function drawnPanels(dashboard: DashboardJson): { panel: PanelJson; gridPos: GridPos }[] {
  return DRAWN.map((wanted) => {
    const panel = dashboard.panels.find((p) => p.type === wanted.type && p.title === wanted.title);
    if (panel === undefined) throw new Error(`the dashboard has no ${wanted.type} panel "${wanted.title}"`);
    return { panel, gridPos: wanted.gridPos ?? panel.gridPos };
  });
}

/** Grafana's interpolation of `$name` and `${name}`; a variable without a value is an error, not a blank. */
function interpolate(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => {
    const value = values[braced ?? bare ?? ''];
    if (value === undefined) throw new Error(`no value for ${whole} in: ${text}`);
    return value;
  });
}

/** The variables with Grafana's built-in intervals for this range and step. */
function queryVariables(from: number, to: number, step: number): Record<string, string> {
  // Grafana: $__rate_interval = max($__interval + scrape interval, 4 × scrape interval).
  const rateInterval = Math.max(step + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS);
  return { ...VARIABLES, __interval: `${step}s`, __rate_interval: `${rateInterval}s`, __range: `${to - from}s` };
}

function legendOf(format: string | undefined, labels: Readonly<Record<string, string>>): string {
  if (format === undefined || format === '__auto' || format === '') {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    return pairs.length === 0 ? 'Value' : `{${pairs.join(', ')}}`;
  }
  return interpolate(format, VARIABLES).replace(/\{\{\s*(\w+)\s*\}\}/g, (_whole, name: string) => labels[name] ?? '');
}

async function queryPrometheus(base: string, expr: string, range: { from: number; to: number; step: number }, instant: boolean): Promise<Frame[]> {
  const params: Record<string, string> = instant ? { query: expr, time: String(range.to) } : { query: expr, start: String(range.from), end: String(range.to), step: String(range.step) };
  const response = await fetch(`${base}/api/v1/${instant ? 'query' : 'query_range'}?${new URLSearchParams(params).toString()}`, { signal: AbortSignal.timeout(15_000) });
  const answer = PromAnswer.parse(await response.json());
  if (answer.status === 'error') throw new Error(`Prometheus refused ${expr}: ${answer.errorType}: ${answer.error}`);
  const value = (text: string): number | null => {
    const n = Number(text);
    return Number.isFinite(n) ? n : null;
  };
  switch (answer.data.resultType) {
    case 'matrix':
      return answer.data.result.map((s) => ({ labels: s.metric, points: s.values.map(([t, v]) => [t, value(v)]) }));
    case 'vector':
      return answer.data.result.map((s) => ({ labels: s.metric, points: [[s.value[0], value(s.value[1])]] }));
    case 'scalar':
      return [{ labels: {}, points: [[answer.data.result[0], value(answer.data.result[1])]] }];
  }
}

/** Every query of the drawn panels and the enabled annotations, asked over the range. */
async function capture(dashboard: DashboardJson, prometheus: string, from: number, to: number): Promise<Capture> {
  const range = { from, to, step: STEP_SECONDS };
  const values = queryVariables(from, to, STEP_SECONDS);
  const panels: Capture['panels'] = [];
  for (const { panel } of drawnPanels(dashboard)) {
    for (const target of panel.targets) {
      const expr = interpolate(target.expr, values);
      panels.push({ key: panelKey(panel), refId: target.refId, expr, frames: await queryPrometheus(prometheus, expr, range, target.instant === true) });
    }
  }
  const annotations: Capture['annotations'] = [];
  for (const annotation of dashboard.annotations.list) {
    if (!annotation.enable || annotation.expr === undefined) continue;
    const expr = interpolate(annotation.expr, values);
    annotations.push({ name: annotation.name, expr, frames: await queryPrometheus(prometheus, expr, range, false) });
  }
  return { from, to, step: STEP_SECONDS, panels, annotations };
}

// From Prometheus's answers to what render.ts draws, by the panels' own field config.

function unitOf(unit: string | undefined): Unit {
  const found = UNITS.find((u) => u === (unit ?? 'none'));
  if (found === undefined) throw new Error(`the picture cannot draw the unit "${unit ?? ''}"; render.ts knows ${UNITS.join(', ')}`);
  return found;
}

function mappingOf(panel: PanelJson): Mapping | undefined {
  const mappings = panel.fieldConfig.defaults.mappings ?? [];
  if (mappings.length === 0) return undefined;
  const merged: Record<string, { text: string; color: string }> = {};
  for (const mapping of mappings) for (const [value, shown] of Object.entries(mapping.options)) merged[value] = { text: shown.text, color: shown.color };
  return merged;
}

function matches(matcher: { id: string; options: string }, name: string): boolean {
  switch (matcher.id) {
    case 'byName':
      return matcher.options === name;
    case 'byRegexp': {
      const body = /^\/(.*)\/([a-z]*)$/.exec(matcher.options);
      return new RegExp(body?.[1] ?? matcher.options, body?.[2] ?? '').test(name);
    }
    default:
      throw new Error(`the picture cannot apply an override matched ${matcher.id}`);
  }
}

/** A series' colour and line, as the panel's defaults and then its overrides (in order) set them. */
function seriesStyle(panel: PanelJson, name: string, index: number): Omit<Series, 'legend' | 'points'> {
  const { defaults, overrides } = panel.fieldConfig;
  const style = {
    color: defaults.color?.mode === 'fixed' && defaults.color.fixedColor !== undefined ? defaults.color.fixedColor : (CLASSIC_PALETTE[index % CLASSIC_PALETTE.length] ?? 'text'),
    lineWidth: defaults.custom?.lineWidth ?? 1,
    lineStyle: defaults.custom?.lineStyle?.fill ?? 'solid',
    fillOpacity: defaults.custom?.fillOpacity ?? 0,
  };
  for (const override of overrides) {
    if (!matches(override.matcher, name)) continue;
    for (const property of override.properties) {
      if (property.id === 'color') style.color = ColorJson.parse(property.value).fixedColor ?? style.color;
      if (property.id === 'custom.lineWidth') style.lineWidth = z.number().parse(property.value);
      if (property.id === 'custom.lineStyle') style.lineStyle = LineStyleJson.parse(property.value).fill;
      if (property.id === 'custom.fillOpacity') style.fillOpacity = z.number().parse(property.value);
    }
  }
  return style;
}

/** The panel's series in query order, each named by its target's legend format. */
function seriesOf(panel: PanelJson, capture: Capture): { legend: string; points: Point[] }[] {
  return panel.targets.flatMap((target) => {
    const answer = capture.panels.find((a) => a.key === panelKey(panel) && a.refId === target.refId);
    if (answer === undefined) throw new Error(`no answer for ${panelKey(panel)} ${target.refId}: was the capture made from this dashboard?`);
    return answer.frames.map((frame) => ({ legend: legendOf(target.legendFormat, frame.labels), points: frame.points }));
  });
}

function thresholdColor(panel: PanelJson, value: number | undefined): string {
  const steps = panel.fieldConfig.defaults.thresholds?.steps ?? DEFAULT_THRESHOLDS;
  let colour = steps[0]?.color ?? 'text';
  for (const step of steps) if (step.value !== null && value !== undefined && value >= step.value) colour = step.color;
  return colour;
}

function lastNotNull(points: readonly Point[]): number | undefined {
  for (let i = points.length - 1; i >= 0; i--) {
    const value = points[i]?.[1];
    if (value !== null && value !== undefined) return value;
  }
  return undefined;
}

/** One value per series, reduced as the stat panels do (last not null); a query that fans out by label is shown in label order. */
function statFields(panel: PanelJson, series: { legend: string; points: Point[] }[]): StatField[] {
  const fields = series.map((s) => {
    const value = lastNotNull(s.points);
    return { name: s.legend, value, color: thresholdColor(panel, value) };
  });
  return panel.targets.length === 1 ? fields.sort((a, b) => a.name.localeCompare(b.name)) : fields;
}

function panelData(panel: PanelJson, gridPos: GridPos, capture: Capture): PanelData {
  const defaults = panel.fieldConfig.defaults;
  const title = interpolate(panel.title, VARIABLES);
  const series = seriesOf(panel, capture);
  switch (panel.type) {
    case 'stat':
      return {
        type: 'stat',
        title,
        gridPos,
        unit: unitOf(defaults.unit),
        decimals: defaults.decimals,
        mapping: mappingOf(panel),
        colorMode: panel.options.colorMode === 'background' ? 'background' : 'value',
        showName: panel.options.textMode === 'value_and_name',
        fields: statFields(panel, series),
      };
    case 'state-timeline':
      return { type: 'state-timeline', title, gridPos, mapping: mappingOf(panel) ?? {}, series: series.map((s, i) => ({ ...s, ...seriesStyle(panel, s.legend, i) })) };
    case 'timeseries':
      return {
        type: 'timeseries',
        title,
        gridPos,
        unit: unitOf(defaults.unit),
        min: defaults.min,
        max: defaults.max,
        decimals: defaults.decimals,
        interpolation: defaults.custom?.lineInterpolation === 'stepAfter' ? 'stepAfter' : 'linear',
        series: series.map((s, i) => ({ legend: s.legend, points: s.points, ...seriesStyle(panel, s.legend, i) })),
      };
    case 'table':
      return tableData(panel, title, gridPos, capture);
    default:
      throw new Error(`the picture cannot draw a ${panel.type} panel ("${panel.title}")`);
  }
}

/** A table of an instant query (format table): a column per label and Value, renamed, sorted by the first column as numbers. */
function tableData(panel: PanelJson, title: string, gridPos: GridPos, capture: Capture): PanelData {
  const frames = panel.targets.flatMap((target) => capture.panels.find((a) => a.key === panelKey(panel) && a.refId === target.refId)?.frames ?? []);
  const organize = panel.transformations.find((t) => t.id === 'organize')?.options;
  const labelNames = [...new Set(frames.flatMap((f) => Object.keys(f.labels)))].sort();
  const fields = [...labelNames, 'Value'].filter((name) => organize?.excludeByName?.[name] !== true);
  const columns = fields.map((name) => organize?.renameByName?.[name] ?? name);
  const unitFor = (column: string): Unit => {
    const override = panel.fieldConfig.overrides.find((o) => o.matcher.id === 'byName' && o.matcher.options === column);
    const unit = override?.properties.find((p) => p.id === 'unit')?.value;
    return unitOf(typeof unit === 'string' ? unit : panel.fieldConfig.defaults.unit);
  };
  const rows = frames
    .map((frame) => fields.map((name) => (name === 'Value' ? (frame.points[0]?.[1] ?? null) : Number(frame.labels[name]))))
    .sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0))
    .map((row) => row.map((value, i) => (value === null ? '' : formatCell(value, unitFor(columns[i] ?? '')))));
  return { type: 'table', title, gridPos, columns: columns.map((name) => ({ name, align: 'right' as const })), rows };
}

function formatCell(value: number, unit: Unit): string {
  return unit === 'percent' ? `${value}%` : String(value);
}

/** Grafana's annotations from a Prometheus series: each run of points above 0 no more than a step apart is one event. */
function annotationEvents(dashboard: DashboardJson, capture: Capture): Annotation[] {
  const events: Annotation[] = [];
  for (const answer of capture.annotations) {
    const annotation = dashboard.annotations.list.find((a) => a.name === answer.name);
    if (annotation === undefined) continue;
    for (const frame of answer.frames) {
      const title = legendOf(annotation.titleFormat ?? annotation.name, frame.labels);
      let open: Annotation | undefined;
      for (const [t, v] of frame.points) {
        if (v === null || v <= 0) continue;
        if (open !== undefined && open.timeEnd + capture.step >= t) {
          open.timeEnd = t;
          continue;
        }
        if (open !== undefined) events.push(open);
        open = { title, color: annotation.iconColor, time: t, timeEnd: t };
      }
      if (open !== undefined) events.push(open);
    }
  }
  return events.sort((a, b) => a.time - b.time);
}

function toPicture(dashboard: DashboardJson, data: Capture): DashboardPicture {
  return {
    title: dashboard.title,
    uid: dashboard.uid,
    variables: VARIABLE_BAR,
    subject: VARIABLES.modelcanary,
    from: data.from,
    to: data.to,
    step: data.step,
    panels: drawnPanels(dashboard).map(({ panel, gridPos }) => panelData(panel, gridPos, data)),
    annotations: annotationEvents(dashboard, data),
  };
}

// Running the demo in this process.

interface Line {
  text: string;
  at: number;
}

/** What the demo printed, line by line with the time each arrived, to wait on. */
class DemoOutput {
  private readonly lines: Line[] = [];
  private partial = '';
  private readonly echo: (text: string) => void;

  constructor(echo: (text: string) => void) {
    this.echo = echo;
  }

  write(text: string): void {
    this.echo(text);
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    const at = Date.now();
    for (const part of parts) this.lines.push({ text: part, at });
  }

  text(): string {
    return this.lines.map((l) => l.text).join('\n');
  }

  async waitFor(pattern: RegExp, what: string, ended: () => boolean, timeoutMs: number): Promise<{ match: RegExpExecArray; at: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const line of this.lines) {
        const match = pattern.exec(line.text);
        if (match !== null) return { match, at: line.at };
      }
      if (ended()) throw new Error(`the demo ended before ${what}`);
      if (Date.now() > deadline) throw new Error(`no ${what} from the demo within ${timeoutMs / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** The demo from start to the end of both rollouts, then Prometheus's answers, then the demo stopped. */
async function captureDemo(dashboard: DashboardJson, log: (text: string) => void): Promise<Capture> {
  const { runDemo } = await import('../src/cli/demo.ts');
  const output = new DemoOutput((text) => {
    log(text.replace(/^(?=.)/gm, '  demo │ '));
  });
  const stop = new AbortController();
  let ended = false;
  const write = (text: string): void => {
    output.write(text);
  };
  const io = { stdout: { write }, stderr: { write }, stdin: process.stdin, cwd: ROOT };
  const exited = runDemo(['--keep'], io, stop.signal).finally(() => {
    ended = true;
  });
  const isEnded = (): boolean => ended;
  try {
    const prometheus = (await output.waitFor(/^ +Prometheus +(\S+)/, 'the Prometheus line', isEnded, 90_000)).match[1] ?? '';
    if (!prometheus.startsWith('http')) throw new Error('the demo runs without Prometheus here; the picture needs it (apt-get install -y prometheus)');
    // The demo creates the ModelCanaries right after naming them: its clock starts there, and so does the picture's range.
    const started = await output.waitFor(new RegExp(`^ +${VARIABLES.modelcanary} +${VARIABLES.stable} → ${VARIABLES.canary}`), 'the rollouts starting', isEnded, 60_000);
    const summary = await output.waitFor(/^(Both rollouts ended as expected|All \d rollouts ended as expected|The rollouts did not end as expected)\.$/, 'the summary', isEnded, 180_000);
    if (summary.match[1] === 'The rollouts did not end as expected') throw new Error('the rollouts did not end as expected: the picture would show something else than the README tells');
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const from = Math.floor(started.at / 1000);
    const to = Math.floor(Date.now() / 1000);
    return await capture(dashboard, prometheus, from, to);
  } finally {
    stop.abort();
    await exited;
  }
}

// The PNG beside the SVG, when this machine's convert can rasterize SVG; a stale one is removed.
function rasterize(svgFile: string): { png: string } | { problem: string } {
  const png = svgFile.replace(/\.svg$/, '.png');
  const result = spawnSync('convert', ['-background', 'none', '-density', '96', svgFile, png], { encoding: 'utf8' });
  if (result.error === undefined && result.status === 0 && existsSync(png) && statSync(png).size > 0) return { png };
  rmSync(png, { force: true });
  const why = result.error?.message ?? (result.stderr.trim().split('\n')[0] || `exit ${String(result.status)}`);
  return { problem: `convert could not rasterize the SVG here (${why}); no PNG` };
}

function describeRange(picture: DashboardPicture): string[] {
  const iso = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', 'Z');
  const values = queryVariables(picture.from, picture.to, picture.step);
  return [
    `Prometheus time range: ${iso(picture.from)} to ${iso(picture.to)} (${picture.to - picture.from} s, step ${picture.step} s, $__rate_interval ${values.__rate_interval ?? ''})`,
    `${picture.subject} annotations: ${picture.annotations.map((a) => `${a.title} at +${a.time - picture.from} s`).join(', ') || 'none'}`,
  ];
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { out: { type: 'string' }, save: { type: 'string' }, replay: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write('Usage: node dashboards/picture.ts [--out docs/rollout-dashboard.svg] [--save FILE] [--replay FILE]\n');
    return 0;
  }
  const dashboard = DashboardJson.parse(JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')));
  const log = (text: string): void => {
    process.stderr.write(text);
  };
  const data = values.replay === undefined ? await captureDemo(dashboard, log) : Capture.parse(JSON.parse(readFileSync(resolve(values.replay), 'utf8')));
  if (values.save !== undefined) {
    mkdirSync(dirname(resolve(values.save)), { recursive: true });
    writeFileSync(resolve(values.save), `${JSON.stringify(data)}\n`);
  }
  const picture = toPicture(dashboard, data);
  const out = values.out === undefined ? DEFAULT_OUT : resolve(values.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, renderDashboard(picture));
  for (const line of describeRange(picture)) process.stdout.write(`${line}\n`);
  process.stdout.write(`wrote ${relative(process.cwd(), out)}\n`);
  const png = rasterize(out);
  process.stdout.write('png' in png ? `wrote ${relative(process.cwd(), png.png)}\n` : `${png.problem}\n`);
  return 0;
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`dashboards/picture.ts: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
