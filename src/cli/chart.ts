// A simulated rollout as one standalone SVG: the canary's weight, each version's 5xx rate
// and p99 per interval, and the engine's decisions, on one shared axis of virtual time.
// Plain string building, so the same result always renders to the same bytes.

import type { SimulationResult, TimelineEntry } from '../analysis/simulator.ts';

const WIDTH = 960;
const HEIGHT = 700;
const LEFT = 84;
const RIGHT = 32;
const PLOT_WIDTH = WIDTH - LEFT - RIGHT;
const FONT = "system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', Helvetica, Arial, sans-serif";

// Okabe–Ito colours, told apart with any colour vision; each decision also has its own dash and label.
const COLOUR = { stable: '#0072B2', canary: '#E69F00', promote: '#009E73', rollback: '#D55E00', advance: '#555555', text: '#222222', muted: '#666666', grid: '#E6E6E6', frame: '#BBBBBB' };

interface Box {
  top: number;
  height: number;
}

const WEIGHT_PANEL: Box = { top: 142, height: 110 };
const ERROR_PANEL: Box = { top: 298, height: 150 };
const LATENCY_PANEL: Box = { top: 494, height: 150 };
/** Decision labels sit in rows above the weight panel, the first row nearest to it. */
const LABEL_ROWS = [WEIGHT_PANEL.top - 8, WEIGHT_PANEL.top - 23];
/** Room after the end, so that the last decision's marker stands clear of the frame. */
const END_PADDING = 0.03;

interface Tick {
  value: number;
  label: string;
}

interface Scale {
  /** undefined for a value the scale cannot place (not positive on a log scale): a gap. */
  y: (value: number) => number | undefined;
  ticks: Tick[];
  log: boolean;
}

type Field = 'errorRate' | 'p99Ms';

export function renderChart(result: SimulationResult): string {
  const { timeline } = result;
  const end = Math.max(result.endedAtSeconds, timeline.at(-1)?.atSeconds ?? 0, 1);
  const domain = end * (1 + END_PADDING);
  const x = (t: number): number => LEFT + (t / domain) * PLOT_WIDTH;
  const per = ` per ${formatDuration(result.intervalSeconds)} interval`;
  // After a promotion or rollback the weight stays put; a timed-out rollout's future is unknown.
  const weightUntil = result.outcome === 'timeout' ? end : domain;

  const errorScale = linearScale(finiteValues(timeline, 'errorRate').map((r) => r * 100), 1, ERROR_PANEL, (v, step) => `${v.toFixed(decimalsFor(step))} %`);
  const latencyScale = latencyScaleFor(timeline);
  const weightScale = linearScale([100], 100, WEIGHT_PANEL, (v) => `${v} %`);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="${escapeXml(FONT)}" font-size="12" fill="${COLOUR.text}">`,
    `<title>${escapeXml(titleText(result, Infinity))}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#FFFFFF"/>`,
    `<text class="title" x="${LEFT}" y="30" font-size="18" font-weight="bold">${escapeXml(titleText(result, 76))}</text>`,
    `<text x="${LEFT}" y="50" font-size="12.5" fill="${COLOUR.muted}">${escapeXml(subtitleText(result))}</text>`,
    legend(timeline),
    panelFrame(WEIGHT_PANEL, 'Canary weight', weightScale, domain, x, WEIGHT_PANEL.top - 38),
    panelFrame(ERROR_PANEL, `5xx error rate${per}`, errorScale, domain, x),
    panelFrame(LATENCY_PANEL, `p99 latency${per}${latencyScale.log ? ' (log scale)' : ''}`, latencyScale, domain, x),
    timeAxis(domain, x),
    decisionMarkers(timeline, x),
    weightLine(timeline, result.startWeight, weightUntil, x, weightScale) + failedChecks(timeline, x),
    errorScale.ticks.length === 0 ? noDataNote(ERROR_PANEL) : versionLines(timeline, 'errorRate', x, (v) => errorScale.y(v * 100)),
    latencyScale.ticks.length === 0 ? noDataNote(LATENCY_PANEL) : versionLines(timeline, 'p99Ms', x, latencyScale.y),
    '</svg>',
  ];
  return `<?xml version="1.0" encoding="UTF-8"?>\n${parts.filter((p) => p !== '').join('\n')}\n`;
}

/** The title; `maxLength` shortens the scenario name (never the outcome) to fit the width. */
function titleText(result: SimulationResult, maxLength: number): string {
  const rest = ` · seed ${result.seed} · ${outcomeText(result)}`;
  const room = Math.max(16, maxLength - rest.length);
  const name = result.scenario.length > room ? `${result.scenario.slice(0, room - 1)}…` : result.scenario;
  return `${name}${rest}`;
}

function outcomeText(result: SimulationResult): string {
  const at = formatDuration(result.endedAtSeconds);
  switch (result.outcome) {
    case 'promoted':
      return `promoted at ${at}`;
    case 'rolledBack':
      return `rolled back at ${at}`;
    case 'timeout':
      return `no decision by ${at} (still at ${result.finalWeight} %)`;
  }
}

function subtitleText(result: SimulationResult): string {
  const decisions = result.timeline.length;
  const parts = [
    `checks every ${formatDuration(result.intervalSeconds)}, ${decisions} ${decisions === 1 ? 'decision' : 'decisions'}`,
    `requests: stable ${groupDigits(result.requests.stable)}, canary ${groupDigits(result.requests.canary)}`,
    `canary 5xx beyond stable’s rate: ${groupDigits(Math.round(result.excessCanaryErrors))}`,
  ];
  if (result.skippedMetrics.length > 0) parts.push(`not simulated: ${result.skippedMetrics.join(', ')}`);
  return parts.join(' · ');
}

/** The canary's weight as a step line: each decision holds until the next one. */
function weightLine(timeline: TimelineEntry[], start: number, until: number, x: (t: number) => number, scale: Scale): string {
  const first = timeline[0];
  if (first === undefined) return '';
  const at = (t: number, w: number): string => `${num(x(t))} ${num(scale.y(w) ?? 0)}`;
  let d = `M${at(first.atSeconds, start)}`;
  let weight = start;
  for (const entry of timeline) {
    d += `L${at(entry.atSeconds, weight)}L${at(entry.atSeconds, entry.weight)}`;
    weight = entry.weight;
  }
  d += `L${at(until, weight)}`;
  const stroke = `fill="none" stroke="${COLOUR.canary}" stroke-width="2.5" stroke-linejoin="round"`;
  const area = `<path d="M${at(0, 0)}L${at(0, start)}${d.replace(/^M/, 'L')}L${at(until, 0)}Z" fill="${COLOUR.canary}" fill-opacity="0.15"/>`;
  const before = `<path d="M${at(0, start)}L${at(first.atSeconds, start)}" ${stroke}/>`;
  return `${area}\n${before}\n<path class="weight" d="${d}" ${stroke}/>`;
}

/** Checks that failed without ending the rollout: small triangles on the weight panel's floor. */
function failedChecks(timeline: TimelineEntry[], x: (t: number) => number): string {
  const bottom = WEIGHT_PANEL.top + WEIGHT_PANEL.height;
  return timeline
    .filter(isFailedHold)
    .map((e) => `\n<path d="M${num(x(e.atSeconds))} ${num(bottom - 9)}l-5 9h10Z" fill="${COLOUR.rollback}"/>`)
    .join('');
}

function isFailedHold(entry: TimelineEntry): boolean {
  return entry.action === 'hold' && entry.verdicts.some((v) => v.verdict === 'fail');
}

/**
 * Each version's value per interval, drawn flat across the interval it measured (the last
 * one may be short: a rollback between checks). An interval without a value is a gap.
 */
function versionLines(timeline: TimelineEntry[], field: Field, x: (t: number) => number, y: (v: number) => number | undefined): string {
  return (['stable', 'canary'] as const)
    .map((version) => {
      let d = '';
      let from = 0;
      let joined = false;
      for (const entry of timeline) {
        const value = entry.measured[version][field];
        const py = Number.isFinite(value) ? y(value) : undefined;
        if (py === undefined || !Number.isFinite(py)) joined = false;
        else {
          d += `${joined ? 'L' : 'M'}${num(x(from))} ${num(py)}H${num(x(entry.atSeconds))}`;
          joined = true;
        }
        from = entry.atSeconds;
      }
      return d === '' ? '' : `<path class="${field} ${version}" d="${d}" fill="none" stroke="${COLOUR[version]}" stroke-width="2" stroke-linejoin="round"/>`;
    })
    .filter((p) => p !== '')
    .join('\n');
}

function panelFrame(box: Box, header: string, scale: Scale, domain: number, x: (t: number) => number, headerY = box.top - 12): string {
  const bottom = box.top + box.height;
  const parts = [`<text x="${LEFT}" y="${headerY}" font-size="13" font-weight="bold">${escapeXml(header)}</text>`];
  for (const tick of scale.ticks) {
    const ty = scale.y(tick.value);
    if (ty === undefined) continue;
    parts.push(`<line x1="${LEFT}" x2="${LEFT + PLOT_WIDTH}" y1="${num(ty)}" y2="${num(ty)}" stroke="${COLOUR.grid}"/>`);
    parts.push(`<text x="${LEFT - 8}" y="${num(ty + 4)}" text-anchor="end" fill="${COLOUR.muted}">${escapeXml(tick.label)}</text>`);
  }
  for (const t of timeTicks(domain)) {
    parts.push(`<line x1="${num(x(t))}" x2="${num(x(t))}" y1="${bottom}" y2="${bottom + 5}" stroke="${COLOUR.muted}"/>`);
  }
  parts.push(`<rect x="${LEFT}" y="${box.top}" width="${PLOT_WIDTH}" height="${box.height}" fill="none" stroke="${COLOUR.frame}"/>`);
  return parts.join('\n');
}

/** The shared time axis, labelled once under the bottom panel. */
function timeAxis(domain: number, x: (t: number) => number): string {
  const bottom = LATENCY_PANEL.top + LATENCY_PANEL.height;
  const labels = timeTicks(domain).map((t) => `<text x="${num(x(t))}" y="${bottom + 19}" text-anchor="middle" fill="${COLOUR.muted}">${formatDuration(t)}</text>`);
  return [...labels, `<text x="${LEFT + PLOT_WIDTH / 2}" y="${HEIGHT - 12}" text-anchor="middle" fill="${COLOUR.muted}">virtual time since the rollout started</text>`].join('\n');
}

function noDataNote(box: Box): string {
  return `<text x="${LEFT + PLOT_WIDTH / 2}" y="${box.top + box.height / 2 + 5}" text-anchor="middle" font-size="14" fill="${COLOUR.muted}">no traffic in any interval: nothing measured</text>`;
}

interface Marker {
  label: string;
  colour: string;
  dash: string;
  width: number;
  bold: boolean;
}

function markerFor(action: TimelineEntry['action'], weight: number): Marker | undefined {
  switch (action) {
    case 'hold':
      return undefined;
    case 'advance':
      return { label: `→ ${weight} %`, colour: COLOUR.advance, dash: '2 3', width: 1.5, bold: false };
    case 'promote':
      return { label: 'promoted', colour: COLOUR.promote, dash: '', width: 2.5, bold: true };
    case 'rollback':
      return { label: 'rolled back', colour: COLOUR.rollback, dash: '7 4', width: 2.5, bold: true };
  }
}

/** Vertical lines through all panels, labelled above the weight panel; a label that would overlap moves up a row. */
function decisionMarkers(timeline: TimelineEntry[], x: (t: number) => number): string {
  const rowEnds = LABEL_ROWS.map(() => -Infinity);
  const parts: string[] = [];
  for (const entry of timeline) {
    const marker = markerFor(entry.action, entry.weight);
    if (marker === undefined) continue;
    const mx = x(entry.atSeconds);
    const width = textWidth(marker.label, marker.bold);
    const anchor = mx + width / 2 > WIDTH - 4 ? 'end' : mx - width / 2 < 4 ? 'start' : 'middle';
    const left = anchor === 'end' ? mx - width : anchor === 'start' ? mx : mx - width / 2;
    let row = rowEnds.findIndex((rowEnd) => rowEnd + 6 <= left);
    if (row < 0) row = rowEnds.indexOf(Math.min(...rowEnds));
    rowEnds[row] = left + width;
    const labelY = LABEL_ROWS[row] ?? LABEL_ROWS[0] ?? 0;
    const dash = marker.dash === '' ? '' : ` stroke-dasharray="${marker.dash}"`;
    parts.push(`<line class="decision ${entry.action}" x1="${num(mx)}" x2="${num(mx)}" y1="${labelY + 4}" y2="${LATENCY_PANEL.top + LATENCY_PANEL.height}" stroke="${marker.colour}" stroke-width="${marker.width}"${dash}/>`);
    parts.push(`<text class="decision ${entry.action}" x="${num(mx)}" y="${labelY}" text-anchor="${anchor}" fill="${marker.colour}"${marker.bold ? ' font-weight="bold"' : ''}>${escapeXml(marker.label)}</text>`);
  }
  return parts.join('\n');
}

function legend(timeline: TimelineEntry[]): string {
  const items: { swatch: string; label: string }[] = [
    { swatch: `<path d="M0 0h22" stroke="${COLOUR.stable}" stroke-width="2.5"/>`, label: 'stable' },
    { swatch: `<path d="M0 0h22" stroke="${COLOUR.canary}" stroke-width="2.5"/>`, label: 'canary' },
  ];
  const actions = new Set(timeline.map((e) => e.action));
  for (const action of ['advance', 'promote', 'rollback'] as const) {
    const marker = actions.has(action) ? markerFor(action, 0) : undefined;
    if (marker === undefined) continue;
    const dash = marker.dash === '' ? '' : ` stroke-dasharray="${marker.dash}"`;
    items.push({ swatch: `<path d="M11 -8v16" stroke="${marker.colour}" stroke-width="${marker.width}"${dash}/>`, label: action });
  }
  if (timeline.some(isFailedHold)) items.push({ swatch: `<path d="M11 -5l-5 9h10Z" fill="${COLOUR.rollback}"/>`, label: 'failed check (held)' });
  let offset = LEFT;
  const parts: string[] = [];
  for (const item of items) {
    parts.push(`<g transform="translate(${num(offset)} 74)">${item.swatch}<text x="28" y="4">${escapeXml(item.label)}</text></g>`);
    offset += 28 + textWidth(item.label, false) + 22;
  }
  return parts.join('\n');
}

function finiteValues(timeline: TimelineEntry[], field: Field): number[] {
  return timeline.flatMap((e) => [e.measured.stable[field], e.measured.canary[field]]).filter((v) => Number.isFinite(v));
}

/**
 * From 0 to a round value at or above the data (and at least `minTop`), so that equal heights
 * mean equal values. Without data there are no ticks, and the panel says so.
 */
function linearScale(values: number[], minTop: number, box: Box, label: (value: number, step: number) => string): Scale {
  if (values.length === 0) return { y: () => undefined, ticks: [], log: false };
  const max = Math.max(minTop, ...values);
  const step = niceStep(max / 4);
  const top = Math.ceil(max / step - 1e-9) * step;
  const ticks: Tick[] = [];
  for (let i = 0; i * step <= top * (1 + 1e-9); i++) {
    const value = Number((i * step).toPrecision(12));
    ticks.push({ value, label: label(value, step) });
  }
  return { y: (v) => box.top + box.height * (1 - v / top), ticks, log: false };
}

/**
 * Linear from 0, unless the slowest p99 is over 20 times the faster version's typical (median)
 * p99, as when a canary times out at seconds against a stable answering in milliseconds: on a
 * linear axis the faster line would lie flat on the floor, so the axis turns logarithmic.
 */
function latencyScaleFor(timeline: TimelineEntry[]): Scale {
  const values = finiteValues(timeline, 'p99Ms');
  const positive = values.filter((v) => v > 0);
  const typical = Math.min(
    ...(['stable', 'canary'] as const).map((version) => median(timeline.map((e) => e.measured[version].p99Ms).filter((v) => Number.isFinite(v) && v > 0))),
  );
  const max = Math.max(...positive);
  if (positive.length === 0 || !Number.isFinite(typical) || max / typical <= 20) return linearScale(values, 1, LATENCY_PANEL, formatMsTick);
  const low = Math.floor(Math.log10(Math.min(...positive)));
  const high = Math.max(low + 1, Math.ceil(Math.log10(max)));
  const mantissas = high - low <= 2 ? [1, 2, 5] : [1];
  const ticks: Tick[] = [];
  for (let e = low; e <= high; e++) {
    for (const m of mantissas) {
      const value = Number((m * 10 ** e).toPrecision(12));
      if (value <= 10 ** high) ticks.push({ value, label: formatMsTick(value) });
    }
  }
  const box = LATENCY_PANEL;
  const y = (v: number): number | undefined => (v > 0 ? box.top + box.height * (1 - (Math.log10(v) - low) / (high - low)) : undefined);
  return { y, ticks, log: true };
}

function formatMsTick(ms: number): string {
  return ms < 1000 ? `${Number(ms.toPrecision(6))} ms` : `${Number((ms / 1000).toPrecision(6))} s`;
}

/** NaN for no values, which the caller treats as "no typical value". */
function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

/** 1, 2, 2.5 or 5 times a power of ten, at least `rough`. */
function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  return ([1, 2, 2.5, 5].find((m) => m * power >= rough * (1 - 1e-9)) ?? 10) * power;
}

function decimalsFor(step: number): number {
  let decimals = 0;
  while (decimals < 6 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-9) decimals++;
  return decimals;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function timeTicks(domain: number): number[] {
  const step = TIME_STEPS.find((s) => domain / s <= 10) ?? Math.ceil(domain / 10 / 86400) * 86400;
  const ticks: number[] = [];
  for (let i = 0; i * step <= domain; i++) ticks.push(i * step);
  return ticks;
}

/** 0, 45s, 1m30s, 2h5m: short enough for an axis. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return String(seconds);
  if (seconds <= 0) return '0';
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = Number(((whole % 60) + seconds - whole).toFixed(3));
  return [h > 0 ? `${h}h` : '', m > 0 ? `${m}m` : '', s > 0 ? `${s}s` : ''].join('');
}

/** 12,345: the same digits in every locale, so the same bytes on every machine. */
function groupDigits(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Rough width of a 12 px label, for keeping labels apart. */
function textWidth(text: string, bold: boolean): number {
  return text.length * (bold ? 7.4 : 6.8);
}

function num(n: number): string {
  return String(Math.round(n * 10) / 10);
}

/** Text as XML character data or a quoted attribute value: markup escaped, characters XML forbids replaced. */
export function escapeXml(text: string): string {
  return Array.from(text.toWellFormed(), (ch) => (isXmlChar(ch) ? ch : '\uFFFD'))
    .join('')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** XML 1.0 allows tab, newline and carriage return, but no other control character, nor U+FFFE or U+FFFF. */
function isXmlChar(ch: string): boolean {
  const code = ch.codePointAt(0) ?? 0;
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code !== 0xfffe && code !== 0xffff);
}
