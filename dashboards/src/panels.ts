// The panel vocabulary both dashboards share: every panel reads Prometheus through the
// `$datasource` variable, has an explicit id (links such as ?viewPanel=12 survive a regeneration)
// and a description that says what to look for.
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/** One Prometheus query of a panel; `table` asks for an instant query shaped as a table. */
export interface Query {
  expr: string;
  legend?: string;
  instant?: boolean;
  table?: boolean;
}

export interface PanelSpec {
  id: number;
  title: string;
  description: string;
  queries: Query[];
  width: number;
  height: number;
  unit?: string;
}

/** What every panel builder of the SDK can do; the SDK has no common interface for it. */
interface PanelBuilder<Self> {
  id(id: number): Self;
  title(title: string): Self;
  description(description: string): Self;
  datasource(datasource: common.DataSourceRef): Self;
  withTarget(target: prometheus.DataqueryBuilder): Self;
  span(width: number): Self;
  height(height: number): Self;
  unit(unit: string): Self;
}

function target(query: Query, refId: string): prometheus.DataqueryBuilder {
  const builder = new prometheus.DataqueryBuilder().datasource(DATASOURCE).refId(refId).expr(query.expr).legendFormat(query.legend ?? '__auto');
  if (query.table === true) return builder.instant().format(prometheus.PromQueryFormat.Table);
  return query.instant === true ? builder.instant() : builder.range();
}

function refId(index: number): string {
  return String.fromCharCode('A'.charCodeAt(0) + index);
}

function described<B extends PanelBuilder<B>>(builder: B, spec: PanelSpec): B {
  let panel = builder.id(spec.id).title(spec.title).description(spec.description).datasource(DATASOURCE).span(spec.width).height(spec.height);
  for (const [index, query] of spec.queries.entries()) panel = panel.withTarget(target(query, refId(index)));
  return spec.unit === undefined ? panel : panel.unit(spec.unit);
}

function legend(): common.VizLegendOptionsBuilder {
  return new common.VizLegendOptionsBuilder().showLegend(true).displayMode(common.LegendDisplayMode.List).placement(common.LegendPlacement.Bottom).calcs([]);
}

function tooltip(): common.VizTooltipOptionsBuilder {
  return new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending);
}

export function timeseriesPanel(spec: PanelSpec): timeseries.PanelBuilder {
  return described(new timeseries.PanelBuilder(), spec)
    .legend(legend())
    .tooltip(tooltip())
    .lineWidth(1)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .spanNulls(false)
    .colorScheme(new dashboard.FieldColorBuilder().mode(dashboard.FieldColorModeId.PaletteClassic));
}

/** Rates split by one label, stacked: the top of the stack is the total. */
export function stackedPanel(spec: PanelSpec): timeseries.PanelBuilder {
  return timeseriesPanel(spec).fillOpacity(30).stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal).group('A'));
}

/** Counts of rare events per interval, stacked bars (rollouts ended, notifications). */
export function barsPanel(spec: PanelSpec): timeseries.PanelBuilder {
  return stackedPanel(spec).drawStyle(common.GraphDrawStyle.Bars).fillOpacity(80);
}

export function statPanel(spec: PanelSpec): stat.PanelBuilder {
  return described(new stat.PanelBuilder(), spec)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .graphMode(common.BigValueGraphMode.None)
    .colorMode(common.BigValueColorMode.Value)
    .textMode(common.BigValueTextMode.Auto)
    .justifyMode(common.BigValueJustifyMode.Auto)
    .orientation(common.VizOrientation.Auto)
    .showPercentChange(false)
    .wideLayout(true);
}

export function stateTimelinePanel(spec: PanelSpec): statetimeline.PanelBuilder {
  return described(new statetimeline.PanelBuilder(), spec)
    .legend(legend())
    .tooltip(tooltip())
    .showValue(common.VisibilityMode.Auto)
    .mergeValues(true)
    .rowHeight(0.9)
    .alignValue(common.TimelineValueAlignment.Left)
    .fillOpacity(80)
    .lineWidth(0);
}

export function tablePanel(spec: PanelSpec): table.PanelBuilder {
  return described(new table.PanelBuilder(), spec).showHeader(true).cellHeight(common.TableCellHeight.Sm).filterable(false);
}

/** Thresholds read from the lowest: the first step's value is Grafana's "base" (null). */
export function thresholds(base: string, ...steps: [number, string][]): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps([{ value: null, color: base }, ...steps.map(([value, color]) => ({ value, color }))]);
}

export type Panel = cog.Builder<dashboard.Panel>;

export interface Override {
  matcher: dashboard.MatcherConfig;
  properties: dashboard.DynamicConfigValue[];
}

export function byName(name: string, ...properties: dashboard.DynamicConfigValue[]): Override {
  return { matcher: { id: 'byName', options: name }, properties };
}

/** `pattern` is a JavaScript regular expression between slashes, matched against the series' name. */
export function byRegexp(pattern: string, ...properties: dashboard.DynamicConfigValue[]): Override {
  return { matcher: { id: 'byRegexp', options: pattern }, properties };
}

export function fixedColor(color: string): dashboard.DynamicConfigValue {
  return { id: 'color', value: { mode: 'fixed', fixedColor: color } };
}

export function lineStyle(fill: 'dash' | 'dot'): dashboard.DynamicConfigValue {
  return { id: 'custom.lineStyle', value: fill === 'dash' ? { fill, dash: [10, 10] } : { fill, dash: [0, 10] } };
}

/** Value mappings from exact values to text and colour, in the order given. */
export function valueMappings(entries: readonly { value: string; text: string; color: string }[]): dashboard.ValueMapping[] {
  const options: Record<string, dashboard.ValueMappingResult> = {};
  for (const [index, entry] of entries.entries()) options[entry.value] = { text: entry.text, color: entry.color, index };
  return [{ type: dashboard.MappingType.ValueToText, options }];
}
