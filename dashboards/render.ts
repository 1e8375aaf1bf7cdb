// A Grafana dashboard drawn as one standalone SVG from data already fetched: the picture of
// the Rollout dashboard in the README, made where no Grafana server runs. It follows Grafana's
// dark theme, its 24-column panel grid and its stat, state-timeline, time-series and table
// panels closely enough to read like a screenshot, and says in its footer that it is not one.
// Plain string building from its input alone: the same picture always gives the same bytes.

import { escapeXml } from '../src/cli/chart.ts';

/** Where a panel sits, in Grafana's grid units: 24 columns, rows of 30 px. */
export interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The units the Rollout dashboard's panels use, by Grafana's names. */
export type Unit = 'percent' | 'percentunit' | 'reqps' | 'ms' | 'short' | 'none';
export type LineStyle = 'solid' | 'dash' | 'dot';
/** Unix seconds and a value; null where Prometheus answered NaN or ±Inf (Grafana leaves a gap). */
export type Point = readonly [number, number | null];

export interface Series {
  legend: string;
  /** A Grafana colour name ("orange", "text", …) or #RRGGBB. */
  color: string;
  lineWidth: number;
  lineStyle: LineStyle;
  /** 0–100, as Grafana's fillOpacity. */
  fillOpacity: number;
  points: readonly Point[];
}

/** A value mapping: what Grafana shows for a raw value, keyed by the value as text. */
export type Mapping = Readonly<Record<string, { text: string; color: string }>>;

export interface StatField {
  name: string;
  /** undefined: no data in the range. */
  value: number | undefined;
  color: string;
}

export interface TableColumn {
  name: string;
  align: 'left' | 'right';
}

export type PanelData =
  | { type: 'stat'; title: string; gridPos: GridPos; unit: Unit; decimals?: number | undefined; mapping?: Mapping | undefined; colorMode: 'background' | 'value'; showName: boolean; fields: StatField[] }
  | { type: 'state-timeline'; title: string; gridPos: GridPos; mapping: Mapping; series: Series[] }
  | { type: 'timeseries'; title: string; gridPos: GridPos; unit: Unit; min?: number | undefined; max?: number | undefined; decimals?: number | undefined; interpolation: 'linear' | 'stepAfter'; series: Series[] }
  | { type: 'table'; title: string; gridPos: GridPos; columns: TableColumn[]; rows: string[][] };

/** An annotation event; a region when timeEnd is after time, as Grafana groups a run of points. */
export interface Annotation {
  title: string;
  color: string;
  time: number;
  timeEnd: number;
}

export interface DashboardPicture {
  title: string;
  uid: string;
  /** The variable bar above the panels: label and value, in order. */
  variables: readonly (readonly [string, string])[];
  /** What the picture is of, for the footer: the ModelCanary's name. */
  subject: string;
  /** The time range and the query step, in unix seconds. */
  from: number;
  to: number;
  step: number;
  panels: readonly PanelData[];
  annotations: readonly Annotation[];
}

const WIDTH = 1440;
const PAD = 16;
const GAP = 8;
const ROW = 30;
const COLUMN = (WIDTH - 2 * PAD + GAP) / 24;
const GRID_TOP = 92;
const FOOTER = 44;
/** Room above each time panel's plot for the first row of annotation titles. */
const LABEL_STRIP = 16;
const FONT = "Inter, 'Helvetica Neue', Arial, 'DejaVu Sans', sans-serif";

// Grafana's dark theme.
const THEME = { canvas: '#111217', panel: '#181b1f', header: '#22252b', border: '#2c2f35', text: '#ccccdc', muted: '#8e8e99', grid: '#26282d', strong: '#f7f8fa' };
const NAMED_COLORS: Readonly<Record<string, string>> = {
  text: '#ccccdc',
  green: '#73bf69',
  'semi-dark-green': '#56a64b',
  yellow: '#fade2a',
  blue: '#5794f2',
  'light-blue': '#8ab8ff',
  orange: '#ff9830',
  red: '#f2495c',
  purple: '#b877d9',
};
/** Grafana's palette-classic, for series without a colour of their own. */
export const CLASSIC_PALETTE = ['#7eb26d', '#eab839', '#6ed0e0', '#ef843c', '#e24d42', '#1f78c1', '#ba43a9', '#705da0', '#508642', '#cca300'] as const;

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Tick {
  at: number;
  label: string;
}

export function renderDashboard(picture: DashboardPicture): string {
  const rows = Math.max(0, ...picture.panels.map((p) => p.gridPos.y + p.gridPos.h));
  const gridBottom = GRID_TOP + rows * (ROW + GAP) - GAP;
  const height = gridBottom + FOOTER;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${num(height)}" viewBox="0 0 ${WIDTH} ${num(height)}" font-family="${escapeXml(FONT)}" font-size="12" fill="${THEME.text}">`,
    `<title>${escapeXml(`${picture.title}: ${picture.subject}, ${timeRangeText(picture)} (a rendering)`)}</title>`,
    `<rect width="${WIDTH}" height="${num(height)}" fill="${THEME.canvas}"/>`,
    header(picture),
    ...picture.panels.map((panel, index) => renderPanel(panel, index, picture)),
    `<text x="${PAD}" y="${num(gridBottom + 28)}" font-size="12" fill="${THEME.muted}">${escapeXml(footerText(picture))}</text>`,
    '</svg>',
  ];
  return `<?xml version="1.0" encoding="UTF-8"?>\n${parts.join('\n')}\n`;
}

export function footerText(picture: DashboardPicture): string {
  return `A rendering of the Grafana dashboard ${picture.uid} from its own queries and the demo's Prometheus data (no Grafana server); ${picture.subject}, ${isoDate(picture.from)}`;
}

function header(picture: DashboardPicture): string {
  const parts = [
    `<text x="${PAD}" y="30" font-size="16" fill="${THEME.muted}">Dashboards ›</text>`,
    `<text x="${num(PAD + textWidth('Dashboards ›', 16) + 6)}" y="30" font-size="16" font-weight="bold" fill="${THEME.strong}">${escapeXml(picture.title)}</text>`,
  ];
  const range = `${timeRangeText(picture)}  ·  t = 0 s at ${clock(picture.from)}`;
  const rangeWidth = textWidth(range, 13) + 24;
  parts.push(
    `<rect x="${num(WIDTH - PAD - rangeWidth)}" y="12" width="${num(rangeWidth)}" height="28" rx="2" fill="${THEME.panel}" stroke="${THEME.border}"/>`,
    `<text x="${num(WIDTH - PAD - 12)}" y="31" font-size="13" text-anchor="end">${escapeXml(range)}</text>`,
  );
  let x = PAD;
  for (const [label, value] of picture.variables) {
    const labelWidth = textWidth(label, 13) + 16;
    const valueWidth = textWidth(value, 13) + 16;
    parts.push(
      `<rect x="${num(x)}" y="52" width="${num(labelWidth)}" height="28" rx="2" fill="${THEME.header}" stroke="${THEME.border}"/>`,
      `<text x="${num(x + 8)}" y="71" font-size="13">${escapeXml(label)}</text>`,
      `<rect x="${num(x + labelWidth)}" y="52" width="${num(valueWidth)}" height="28" rx="2" fill="${THEME.canvas}" stroke="${THEME.border}"/>`,
      `<text x="${num(x + labelWidth + 8)}" y="71" font-size="13" fill="${THEME.strong}">${escapeXml(value)}</text>`,
    );
    x += labelWidth + valueWidth + 10;
  }
  return parts.join('\n');
}

function renderPanel(panel: PanelData, index: number, picture: DashboardPicture): string {
  const box = panelRect(panel.gridPos);
  const background = panel.type === 'stat' && panel.colorMode === 'background' && panel.fields.length === 1 ? statColor(panel, panel.fields[0]) : undefined;
  const frame = [
    `<g class="panel" data-title="${escapeXml(panel.title)}">`,
    `<rect x="${num(box.x)}" y="${num(box.y)}" width="${num(box.w)}" height="${num(box.h)}" rx="2" fill="${background ?? THEME.panel}" stroke="${THEME.border}"/>`,
    `<text x="${num(box.x + 8)}" y="${num(box.y + 21)}" font-size="14" font-weight="bold" fill="${background === undefined ? THEME.text : THEME.strong}">${escapeXml(fit(panel.title, box.w - 16, 14))}</text>`,
  ];
  const body: Rect = { x: box.x + 8, y: box.y + 32, w: box.w - 16, h: box.h - 40 };
  frame.push(panelBody(panel, body, index, picture), '</g>');
  return frame.join('\n');
}

function panelBody(panel: PanelData, body: Rect, index: number, picture: DashboardPicture): string {
  switch (panel.type) {
    case 'stat':
      return statBody(panel, body);
    case 'state-timeline':
      return stateTimelineBody(panel, body, index, picture);
    case 'timeseries':
      return timeSeriesBody(panel, body, index, picture);
    case 'table':
      return tableBody(panel, body);
  }
}

function panelRect(pos: GridPos): Rect {
  return { x: PAD + pos.x * COLUMN, y: GRID_TOP + pos.y * (ROW + GAP), w: pos.w * COLUMN - GAP, h: pos.h * (ROW + GAP) - GAP };
}

type StatPanel = Extract<PanelData, { type: 'stat' }>;

function statText(panel: StatPanel, field: StatField): string {
  if (field.value === undefined) return 'No data';
  return panel.mapping?.[String(field.value)]?.text ?? formatValue(field.value, panel.unit, panel.decimals);
}

function statColor(panel: StatPanel, field: StatField | undefined): string {
  if (field?.value === undefined) return THEME.muted;
  return color(panel.mapping?.[String(field.value)]?.color ?? field.color);
}

function statBody(panel: StatPanel, body: Rect): string {
  if (panel.fields.length === 0) return noData(body);
  const background = panel.colorMode === 'background' && panel.fields.length === 1;
  const cell = body.w / panel.fields.length;
  const parts: string[] = [];
  const longestName = Math.max(...panel.fields.map((f) => f.name.length));
  const nameSize = panel.showName ? Math.max(9, Math.min(14, body.h * 0.2, (cell - 6) / (longestName * 0.6))) : 0;
  panel.fields.forEach((field, i) => {
    const text = statText(panel, field);
    const centre = body.x + cell * i + cell / 2;
    const valueRoom = body.h - (panel.showName ? nameSize + 6 : 0);
    const size = Math.max(12, Math.min(valueRoom * 0.62, 48, (cell - 8) / (text.length * 0.6)));
    const valueY = body.y + (panel.showName ? nameSize + 6 : 0) + valueRoom / 2 + size * 0.36;
    if (panel.showName) parts.push(`<text x="${num(centre)}" y="${num(body.y + nameSize)}" font-size="${num(nameSize)}" text-anchor="middle" fill="${background ? THEME.strong : THEME.text}">${escapeXml(fit(field.name, cell - 4, nameSize))}</text>`);
    parts.push(`<text x="${num(centre)}" y="${num(valueY)}" font-size="${num(size)}" font-weight="bold" text-anchor="middle" fill="${background ? THEME.strong : statColor(panel, field)}">${escapeXml(text)}</text>`);
  });
  return parts.join('\n');
}

type TimelinePanel = Extract<PanelData, { type: 'state-timeline' }>;

/** The state timeline: one band per series, equal consecutive values merged, as `mergeValues`. */
function stateTimelineBody(panel: TimelinePanel, body: Rect, index: number, picture: DashboardPicture): string {
  const labelWidth = Math.max(0, ...panel.series.map((s) => textWidth(s.legend, 12))) + 12;
  const plot: Rect = { x: body.x + labelWidth, y: body.y + LABEL_STRIP, w: body.w - labelWidth - 4, h: body.h - LABEL_STRIP - 20 };
  const x = timeScale(picture, plot);
  const parts = [plotMarker(plot), clipPath(index, plot), timeAxis(picture, plot, x, false)];
  if (panel.series.length === 0) return parts.join('\n') + noData(plot);
  const rowHeight = plot.h / panel.series.length;
  panel.series.forEach((series, row) => {
    const top = plot.y + row * rowHeight + rowHeight * 0.05;
    const height = rowHeight * 0.9;
    parts.push(`<text x="${num(body.x)}" y="${num(top + height / 2 + 4)}" font-size="12">${escapeXml(series.legend)}</text>`);
    for (const run of stateRuns(series.points, picture.step)) {
      const state = panel.mapping[String(run.value)] ?? { text: formatValue(run.value, 'none'), color: series.color };
      const left = x(run.from);
      const width = Math.max(1, x(run.to) - left);
      parts.push(`<rect x="${num(left)}" y="${num(top)}" width="${num(width)}" height="${num(height)}" fill="${color(state.color)}" fill-opacity="0.8" clip-path="url(#clip-${index})"/>`);
      if (width > textWidth(state.text, 12) + 10) parts.push(`<text x="${num(left + 6)}" y="${num(top + height / 2 + 4)}" font-size="12" fill="${THEME.strong}">${escapeXml(state.text)}</text>`);
    }
  });
  parts.push(annotations(picture, plot, x, index));
  return parts.join('\n');
}

/** Runs of one value without gaps; each run lasts until the next point (or one step past its last). */
function stateRuns(points: readonly Point[], step: number): { value: number; from: number; to: number }[] {
  const runs: { value: number; from: number; to: number }[] = [];
  let previous: Point | undefined;
  for (const point of points) {
    const [t, v] = point;
    const last = runs.at(-1);
    const joined = previous !== undefined && previous[1] !== null && t - previous[0] <= step * 1.5;
    if (last !== undefined && joined) last.to = t;
    if (v !== null) {
      if (last !== undefined && joined && last.value === v) last.to = t + step;
      else runs.push({ value: v, from: t, to: t + step });
    }
    previous = point;
  }
  return runs;
}

type TimeSeriesPanel = Extract<PanelData, { type: 'timeseries' }>;

function timeSeriesBody(panel: TimeSeriesPanel, body: Rect, index: number, picture: DashboardPicture): string {
  const legend = legendLayout(panel.series, body.w);
  const values = panel.series.flatMap((s) => s.points.flatMap(([, v]) => (v === null ? [] : [v])));
  const scale = valueScale(values, panel);
  const labelWidth = Math.max(0, ...scale.ticks.map((t) => textWidth(t.label, 12)));
  const plot: Rect = { x: body.x + labelWidth + 8, y: body.y + LABEL_STRIP, w: body.w - labelWidth - 12, h: body.h - legend.height - LABEL_STRIP - 30 };
  const x = timeScale(picture, plot);
  const parts = [plotMarker(plot), clipPath(index, plot)];
  for (const tick of scale.ticks) {
    const y = scale.y(tick.at, plot);
    parts.push(`<line x1="${num(plot.x)}" x2="${num(plot.x + plot.w)}" y1="${num(y)}" y2="${num(y)}" stroke="${THEME.grid}"/>`);
    parts.push(`<text x="${num(plot.x - 6)}" y="${num(y + 4)}" font-size="12" text-anchor="end" fill="${THEME.muted}">${escapeXml(tick.label)}</text>`);
  }
  parts.push(timeAxis(picture, plot, x, true));
  if (values.length === 0) parts.push(noData(plot));
  for (const series of panel.series) parts.push(seriesPath(series, panel.interpolation, picture.step, x, (v) => scale.y(v, plot), plot, index));
  parts.push(annotations(picture, plot, x, index));
  parts.push(legendItems(panel.series, legend, body.x, plot.y + plot.h + 36));
  return parts.join('\n');
}

interface ValueScale {
  ticks: Tick[];
  y: (value: number, plot: Rect) => number;
}

function valueScale(values: number[], panel: TimeSeriesPanel): ValueScale {
  let lo = panel.min ?? Math.min(...values, panel.max ?? Infinity);
  let hi = panel.max ?? Math.max(...values, panel.min ?? -Infinity);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (lo === hi) hi = lo === 0 ? 1 : lo + Math.abs(lo) * 0.2;
  // Headroom as uPlot's auto range gives it, so that a line at the maximum does not run along the frame; never below 0 for data that is not.
  const pad = (hi - lo) * 0.1;
  if (panel.max === undefined) hi += pad;
  if (panel.min === undefined) lo = lo >= 0 ? Math.max(0, lo - pad) : lo - pad;
  const step = niceStep((hi - lo) / 5);
  if (panel.min === undefined) lo = Math.floor(lo / step) * step;
  if (panel.max === undefined) hi = Math.ceil(hi / step) * step;
  const ticks: Tick[] = [];
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) {
    const at = i * step;
    ticks.push({ at, label: formatValue(at, panel.unit, panel.decimals ?? tickDecimals(step, panel.unit)) });
  }
  return { ticks, y: (value, plot) => plot.y + plot.h - ((value - lo) / (hi - lo)) * plot.h };
}

function seriesPath(series: Series, interpolation: 'linear' | 'stepAfter', step: number, x: (t: number) => number, y: (v: number) => number, plot: Rect, index: number): string {
  const runs: [number, number][][] = [];
  let previous: Point | undefined;
  for (const point of series.points) {
    const [t, v] = point;
    const joined = previous !== undefined && previous[1] !== null && t - previous[0] <= step * 1.5;
    if (v !== null) {
      const run = joined ? runs.at(-1) : undefined;
      if (run === undefined) runs.push([[x(t), y(v)]]);
      else run.push([x(t), y(v)]);
    }
    previous = point;
  }
  const stroke = color(series.color);
  const dash = series.lineStyle === 'dash' ? ' stroke-dasharray="10 10"' : series.lineStyle === 'dot' ? ' stroke-dasharray="0 6" stroke-linecap="round"' : '';
  const width = series.lineStyle === 'dot' ? Math.max(2, series.lineWidth + 1) : series.lineWidth;
  const base = Math.min(plot.y + plot.h, Math.max(plot.y, y(0)));
  const parts: string[] = [];
  for (const run of runs) {
    const line = run.map(([px, py], i) => {
      const before = run[i - 1];
      const to = `${num(px)} ${num(py)}`;
      if (i === 0) return `M${to}`;
      return interpolation === 'stepAfter' && before !== undefined ? `L${num(px)} ${num(before[1])}L${to}` : `L${to}`;
    });
    const first = run[0];
    const last = run.at(-1);
    if (first === undefined || last === undefined) continue;
    if (series.fillOpacity > 0 && run.length > 1) {
      parts.push(`<path d="${line.join('')}L${num(last[0])} ${num(base)}L${num(first[0])} ${num(base)}Z" fill="${stroke}" fill-opacity="${num(series.fillOpacity / 100)}" stroke="none" clip-path="url(#clip-${index})"/>`);
    }
    parts.push(`<path d="${line.join('')}" fill="none" stroke="${stroke}" stroke-width="${num(width)}" stroke-linejoin="round"${dash} clip-path="url(#clip-${index})"/>`);
  }
  return parts.join('\n');
}

interface LegendLayout {
  height: number;
  /** Each item's row and x offset. */
  places: { row: number; x: number }[];
}

function legendLayout(series: readonly Series[], width: number): LegendLayout {
  const places: { row: number; x: number }[] = [];
  let row = 0;
  let x = 0;
  for (const s of series) {
    const itemWidth = 26 + textWidth(s.legend, 12);
    if (x > 0 && x + itemWidth > width) {
      row += 1;
      x = 0;
    }
    places.push({ row, x });
    x += itemWidth + 16;
  }
  return { height: series.length === 0 ? 0 : (row + 1) * 18, places };
}

function legendItems(series: readonly Series[], layout: LegendLayout, left: number, top: number): string {
  return series
    .map((s, i) => {
      const place = layout.places[i] ?? { row: 0, x: 0 };
      const x = left + place.x;
      const y = top + place.row * 18;
      const dash = s.lineStyle === 'dash' ? ' stroke-dasharray="5 3"' : s.lineStyle === 'dot' ? ' stroke-dasharray="0 4" stroke-linecap="round"' : '';
      return [
        `<line class="legend-swatch" x1="${num(x)}" x2="${num(x + 18)}" y1="${num(y - 4)}" y2="${num(y - 4)}" stroke="${color(s.color)}" stroke-width="${s.lineStyle === 'solid' ? 4 : 3}"${dash}/>`,
        `<text class="legend" x="${num(x + 24)}" y="${num(y)}" font-size="12">${escapeXml(s.legend)}</text>`,
      ].join('');
    })
    .join('\n');
}

type TablePanel = Extract<PanelData, { type: 'table' }>;

function tableBody(panel: TablePanel, body: Rect): string {
  if (panel.columns.length === 0) return noData(body);
  const width = body.w / panel.columns.length;
  const rowHeight = 30;
  const cell = (text: string, column: number, y: number, colour: string, bold: boolean): string => {
    const align = panel.columns[column]?.align ?? 'left';
    const x = align === 'right' ? body.x + width * (column + 1) - 10 : body.x + width * column + 10;
    return `<text x="${num(x)}" y="${num(y)}" font-size="13"${bold ? ' font-weight="bold"' : ''}${align === 'right' ? ' text-anchor="end"' : ''} fill="${colour}">${escapeXml(fit(text, width - 20, 13))}</text>`;
  };
  const parts = [`<rect x="${num(body.x)}" y="${num(body.y)}" width="${num(body.w)}" height="${rowHeight}" fill="${THEME.header}"/>`];
  panel.columns.forEach((column, i) => parts.push(cell(column.name, i, body.y + 20, THEME.text, true)));
  panel.rows.forEach((row, r) => {
    const top = body.y + rowHeight * (r + 1);
    if (top + rowHeight > body.y + body.h) return;
    parts.push(`<line x1="${num(body.x)}" x2="${num(body.x + body.w)}" y1="${num(top + rowHeight)}" y2="${num(top + rowHeight)}" stroke="${THEME.border}"/>`);
    row.forEach((text, i) => parts.push(cell(text, i, top + 20, THEME.text, false)));
  });
  return parts.join('\n');
}

function timeScale(picture: DashboardPicture, plot: Rect): (t: number) => number {
  const span = Math.max(picture.to - picture.from, 1);
  return (t) => plot.x + ((t - picture.from) / span) * plot.w;
}

/** Seconds from the start of the range, at a spacing that leaves each label room. */
function timeAxis(picture: DashboardPicture, plot: Rect, x: (t: number) => number, grid: boolean): string {
  const span = Math.max(picture.to - picture.from, 1);
  const spacing = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600].find((s) => (plot.w * s) / span >= 64) ?? 3600;
  const parts: string[] = [];
  for (let s = 0; s <= span; s += spacing) {
    const at = x(picture.from + s);
    if (grid) parts.push(`<line x1="${num(at)}" x2="${num(at)}" y1="${num(plot.y)}" y2="${num(plot.y + plot.h)}" stroke="${THEME.grid}"/>`);
    const label = `${s} s`;
    // The first label starts at the axis and the last ends at the edge, clear of the value axis and the frame.
    const half = textWidth(label, 12) / 2;
    const anchor = at - half < plot.x - 2 ? 'start' : at + half > plot.x + plot.w + 2 ? 'end' : 'middle';
    parts.push(`<text x="${num(at)}" y="${num(plot.y + plot.h + 16)}" font-size="12" text-anchor="${anchor}" fill="${THEME.muted}">${label}</text>`);
  }
  return parts.join('\n');
}

/**
 * The annotation events over one panel's plot: a dashed line at each event's time (a faint band
 * to its end when a region), a marker under the axis as Grafana draws them, and the title
 * (Grafana shows it on hover; a picture has to print it), in rows so that titles never overlap.
 */
function annotations(picture: DashboardPicture, plot: Rect, x: (t: number) => number, index: number): string {
  const parts: string[] = [];
  const rowEnds: number[] = [];
  const events = [...picture.annotations].filter((a) => a.time >= picture.from && a.time <= picture.to).sort((a, b) => a.time - b.time || a.title.localeCompare(b.title));
  for (const event of events) {
    const at = x(event.time);
    const stroke = color(event.color);
    if (event.timeEnd > event.time) {
      parts.push(`<rect x="${num(at)}" y="${num(plot.y)}" width="${num(x(Math.min(event.timeEnd, picture.to)) - at)}" height="${num(plot.h)}" fill="${stroke}" fill-opacity="0.1" clip-path="url(#clip-${index})"/>`);
    }
    parts.push(`<line class="annotation" data-time="${event.time}" x1="${num(at)}" x2="${num(at)}" y1="${num(plot.y - LABEL_STRIP + 2)}" y2="${num(plot.y + plot.h)}" stroke="${stroke}" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    parts.push(`<path d="M${num(at)} ${num(plot.y + plot.h)}l-4 6h8z" fill="${stroke}"/>`);
    const labelWidth = textWidth(event.title, 11) + 8;
    const leftward = at + labelWidth + 2 > plot.x + plot.w;
    const start = leftward ? at - 2 - labelWidth : at + 2;
    let row = rowEnds.findIndex((end) => end < start);
    if (row < 0) row = rowEnds.length;
    rowEnds[row] = start + labelWidth + 4;
    // The first row sits in the strip above the plot, clear of the data; a halo keeps later rows readable over lines.
    const baseline = plot.y - 5 + row * 14;
    parts.push(`<text class="annotation-label" x="${num(start + 4)}" y="${num(baseline)}" font-size="11" fill="${stroke}" stroke="${THEME.panel}" stroke-width="3" stroke-linejoin="round" paint-order="stroke">${escapeXml(event.title)}</text>`);
  }
  return parts.join('\n');
}

/** The plot area, invisible: where the data is drawn, for a reader of the SVG (and the tests). */
function plotMarker(plot: Rect): string {
  return `<rect class="plot" x="${num(plot.x)}" y="${num(plot.y)}" width="${num(plot.w)}" height="${num(plot.h)}" fill="none"/>`;
}

function clipPath(index: number, plot: Rect): string {
  return `<clipPath id="clip-${index}"><rect x="${num(plot.x)}" y="${num(plot.y - 1)}" width="${num(plot.w)}" height="${num(plot.h + 2)}"/></clipPath>`;
}

function noData(area: Rect): string {
  return `<text x="${num(area.x + area.w / 2)}" y="${num(area.y + area.h / 2 + 5)}" font-size="14" text-anchor="middle" fill="${THEME.muted}">No data</text>`;
}

/** A value in a Grafana unit; `decimals` undefined picks about three significant digits. */
export function formatValue(value: number, unit: Unit, decimals?: number): string {
  switch (unit) {
    case 'percent':
      return `${fixed(value, decimals)}%`;
    case 'percentunit':
      return `${fixed(value * 100, decimals)}%`;
    case 'reqps':
      return `${fixed(value, decimals)} req/s`;
    case 'ms':
      return Math.abs(value) >= 1000 ? `${fixed(value / 1000, decimals)} s` : `${fixed(value, decimals)} ms`;
    case 'short':
    case 'none':
      return fixed(value, decimals);
  }
}

function fixed(value: number, decimals: number | undefined): string {
  const places = decimals ?? autoDecimals(value);
  const text = value.toFixed(places);
  return Number(text) === 0 ? (0).toFixed(places) : text;
}

function autoDecimals(value: number): number {
  const size = Math.abs(value);
  if (Number.isInteger(value) || size >= 100) return 0;
  if (size === 0) return 0;
  return Math.min(6, Math.max(0, 2 - Math.floor(Math.log10(size))));
}

/** Decimals that tell ticks `step` apart, in the unit's displayed scale. */
function tickDecimals(step: number, unit: Unit): number {
  const shown = unit === 'percentunit' ? step * 100 : unit === 'ms' && step >= 1000 ? step / 1000 : step;
  return Math.max(0, -Math.floor(Math.log10(shown) + 1e-9));
}

function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  return ([1, 2, 5, 10].find((m) => m * power >= rough) ?? 10) * power;
}

export function color(name: string): string {
  return NAMED_COLORS[name] ?? name;
}

function timeRangeText(picture: DashboardPicture): string {
  return `${isoDate(picture.from)} ${clock(picture.from)} to ${clock(picture.to)} UTC`;
}

function isoDate(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

function clock(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(11, 19);
}

/** Rough width of text at a size, for layout: wide enough for DejaVu Sans, the widest fallback. */
function textWidth(text: string, size: number): number {
  return text.length * size * 0.6;
}

function fit(text: string, width: number, size: number): string {
  const room = Math.floor(width / (size * 0.6));
  return text.length <= room ? text : `${text.slice(0, Math.max(1, room - 1))}…`;
}

function num(n: number): string {
  return String(Math.round(n * 10) / 10);
}
