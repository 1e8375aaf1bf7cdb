// One ModelCanary's rollout: where it is, what the mesh sees of each version, and what the
// analysis measured and decided at every check.
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as units from '@grafana/grafana-foundation-sdk/units';
import { classicDashboard, type DashboardBuilder } from './classic.ts';
import { byName, byRegexp, DATASOURCE, fixedColor, lineStyle, stackedPanel, statPanel, stateTimelinePanel, tablePanel, thresholds, timeseriesPanel, valueMappings, type Override, type Panel, type Query } from './panels.ts';
import { phaseCode, phaseCodeMappings } from './phases.ts';
import { counterRoseRecently, quantile } from './promql.ts';
import { datasourceVariable, labelValuesVariable, multiValueVariable } from './variables.ts';

export const ROLLOUT_UID = 'modelcanary-rollout';

const CANARY = 'namespace="$namespace",name="$modelcanary"';
const VERSIONS = ['stable', 'canary'] as const;
type Version = (typeof VERSIONS)[number];

/** Istio's series for one version of the model, as the default analysis matchers select them. */
function istio(version: Version, extra = ''): string {
  return `reporter="destination",destination_workload_namespace="$namespace",destination_canonical_service="$model",destination_canonical_revision="$${version}"${extra}`;
}

const VERSION_COLORS: Override[] = [byRegexp('/^stable/', fixedColor('blue')), byRegexp('/^canary/', fixedColor('orange'))];

const VERDICT_COLORS: Record<string, string> = { pass: 'green', fail: 'red', inconclusive: 'yellow', error: 'purple' };

function variables(): cog.Builder<dashboard.VariableModel>[] {
  const current = `modelcanary_rollout_info{${CANARY}}`;
  return [
    datasourceVariable(),
    labelValuesVariable({ name: 'namespace', label: 'Namespace', query: 'label_values(modelcanary_rollout_info, namespace)' }),
    labelValuesVariable({ name: 'modelcanary', label: 'ModelCanary', query: 'label_values(modelcanary_rollout_info{namespace="$namespace"}, name)' }),
    // The model and its two versions select Istio's series; they follow the ModelCanary chosen.
    labelValuesVariable({ name: 'model', label: 'Model', query: `label_values(${current}, model)`, hidden: true }),
    labelValuesVariable({ name: 'stable', label: 'Stable version', query: `label_values(${current}, stable)`, hidden: true }),
    labelValuesVariable({ name: 'canary', label: 'Canary version', query: `label_values(${current}, canary)`, hidden: true }),
    // One "Analysis" panel is repeated per metric: their units differ (a ratio, milliseconds, a query's own).
    multiValueVariable({ name: 'metric', label: 'Analysis metric', query: `label_values(modelcanary_analysis_metric_value{${CANARY}}, metric)`, hidden: true }),
  ];
}

interface Transition {
  event: string;
  name: string;
  color: string;
  text: string;
}

const TRANSITIONS: readonly Transition[] = [
  { event: 'started', name: 'Started', color: 'blue', text: 'Rollout started: the canary takes its first step' },
  { event: 'advanced', name: 'Advanced', color: 'light-blue', text: 'Checks passed: the canary moved to the next step' },
  { event: 'promoted', name: 'Promoted', color: 'green', text: 'The canary became the stable version' },
  { event: 'rolledBack', name: 'Rolled back', color: 'red', text: 'A check failed: all traffic went back to stable' },
];

function transitionAnnotation(transition: Transition): dashboard.AnnotationQueryBuilder {
  return new dashboard.AnnotationQueryBuilder()
    .name(transition.name)
    .datasource(DATASOURCE)
    .enable(true)
    .hide(false)
    .iconColor(transition.color)
    .expr(counterRoseRecently(`modelcanary_transitions_total{${CANARY},event="${transition.event}"}`))
    .titleFormat(transition.name)
    .textFormat(transition.text)
    .tagKeys('event')
    .useValueForTime(false);
}

/** Transitions that are not drawn by default (held, paused, resumed, …), each titled by its event. */
function otherTransitionsAnnotation(): dashboard.AnnotationQueryBuilder {
  const drawn = TRANSITIONS.map((transition) => transition.event).join('|');
  return new dashboard.AnnotationQueryBuilder()
    .name('Other transitions')
    .datasource(DATASOURCE)
    .enable(false)
    .hide(false)
    .iconColor('purple')
    .expr(counterRoseRecently(`modelcanary_transitions_total{${CANARY},event!~"${drawn}"}`))
    .titleFormat('{{event}}')
    .textFormat('Transition {{event}}')
    .tagKeys('event')
    .useValueForTime(false);
}

function statusRow(): Panel[] {
  const size = { width: 4, height: 4 };
  return [
    statPanel({ id: 1, title: 'Phase', description: 'The rollout\'s phase now. Progressing: stepping through the plan; Paused: waiting for a resume; RolledBack or Failed: read the annotations and the analysis panels below.', queries: [{ expr: phaseCode(CANARY), legend: 'phase' }], ...size })
      .mappings(phaseCodeMappings())
      .colorMode(common.BigValueColorMode.Background),
    statPanel({ id: 2, title: 'Step', description: 'The step in force (0 before the rollout starts) and how many steps the plan has.', queries: [{ expr: `max(modelcanary_step{${CANARY}})`, legend: 'step' }, { expr: `max(modelcanary_steps{${CANARY}})`, legend: 'of' }], ...size })
      .textMode(common.BigValueTextMode.ValueAndName)
      .decimals(0),
    statPanel({ id: 3, title: 'Canary weight', description: 'Percent of the model\'s traffic the VirtualService sends to the canary now.', queries: [{ expr: `max(modelcanary_canary_weight{${CANARY}})`, legend: 'canary' }], unit: units.Percent, ...size })
      .thresholds(thresholds('orange'))
      .min(0)
      .max(100),
    statPanel({ id: 4, title: 'Inconclusive checks', description: 'Consecutive checks that could not judge the canary (no traffic, no data, a query error). A growing number means the rollout is waiting for evidence, not failing.', queries: [{ expr: `max(modelcanary_inconclusive_checks{${CANARY}})`, legend: 'inconclusive' }], ...size })
      .thresholds(thresholds('green', [1, 'yellow'], [3, 'orange']))
      .decimals(0),
    statPanel({ id: 5, title: 'Held without evidence', description: 'Yes when the controller holds the canary at its weight because checks keep coming back inconclusive. Look for missing traffic or a broken metric query.', queries: [{ expr: `max(modelcanary_held_without_evidence{${CANARY}})`, legend: 'held' }], ...size })
      .mappings(valueMappings([{ value: '0', text: 'No', color: 'green' }, { value: '1', text: 'Yes', color: 'orange' }])),
    statPanel({ id: 6, title: 'Decisions', description: 'What the controller decided at its checks in the time range: hold, advance, promote or roll back.', queries: [{ expr: `round(sum by (decision) (increase(modelcanary_decisions_total{${CANARY}}[$__range])))`, legend: '{{decision}}', instant: true }], ...size })
      .textMode(common.BigValueTextMode.ValueAndName)
      .thresholds(thresholds('text'))
      .decimals(0),
  ];
}

function phaseTimeline(): Panel {
  return stateTimelinePanel({ id: 7, title: 'Phase over time', description: 'When the rollout was pending, progressing, paused, and how it ended.', queries: [{ expr: phaseCode(CANARY), legend: 'phase' }], width: 24, height: 4 })
    .mappings(phaseCodeMappings())
    .legend(new common.VizLegendOptionsBuilder().showLegend(false).displayMode(common.LegendDisplayMode.Hidden).placement(common.LegendPlacement.Bottom).calcs([]));
}

function weightPanels(): Panel[] {
  // count_values turns the step in force (a value) into a label, to pick that step's planned weight.
  const planned = (offset: string) => `max(modelcanary_step_weight{${CANARY}} and on (step) count_values("step", max(modelcanary_step{${CANARY}})${offset}))`;
  return [
    timeseriesPanel({
      id: 8,
      title: 'Canary weight',
      description: 'Traffic on the canary against the plan: the weight now, the weight planned for this step and for the next. The weight staying below the plan means the router has not caught up; dropping to 0 is a rollback.',
      queries: [
        { expr: `max(modelcanary_canary_weight{${CANARY}})`, legend: 'canary weight' },
        { expr: planned(''), legend: 'planned for this step' },
        { expr: planned(' + 1'), legend: 'planned for the next step' },
      ],
      unit: units.Percent,
      width: 16,
      height: 8,
    })
      .min(0)
      .max(100)
      .lineInterpolation(common.LineInterpolation.StepAfter)
      .overrides([
        byName('canary weight', fixedColor('orange'), { id: 'custom.lineWidth', value: 2 }),
        byName('planned for this step', fixedColor('text'), lineStyle('dash')),
        byName('planned for the next step', fixedColor('text'), lineStyle('dot')),
      ]),
    tablePanel({ id: 9, title: 'Step plan', description: 'The weight each step of the plan puts on the canary.', queries: [{ expr: `max by (step) (modelcanary_step_weight{${CANARY}})`, table: true }], width: 8, height: 8 })
      .withTransformation({ id: 'convertFieldType', options: { conversions: [{ targetField: 'step', destinationType: 'number' }] } })
      .withTransformation({ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { step: 'Step', Value: 'Canary weight' } } })
      .withTransformation({ id: 'sortBy', options: { sort: [{ field: 'Step', desc: false }] } })
      .overrides([byName('Canary weight', { id: 'unit', value: units.Percent })]),
  ];
}

function trafficPanels(): Panel[] {
  const requests = (version: Version, extra = '') => `sum(rate(istio_requests_total{${istio(version, extra)}}[$__rate_interval]))`;
  return [
    timeseriesPanel({
      id: 10,
      title: 'Requests',
      description: 'Requests per second each version serves, as Istio reports them at the destination. The canary\'s share should follow its weight; a canary with no requests cannot be judged.',
      // A version Istio has not seen a request for yet has no series: show it at 0.
      queries: VERSIONS.map((version): Query => ({ expr: `${requests(version)} or vector(0)`, legend: `${version} ($${version})` })),
      unit: units.RequestsPerSecond,
      width: 12,
      height: 8,
    }).overrides(VERSION_COLORS),
    timeseriesPanel({
      id: 11,
      title: '5xx ratio',
      description: 'Share of each version\'s requests that ended in a 5xx. The canary above stable is what the errorRate check catches; empty while a version has no traffic.',
      queries: VERSIONS.map((version): Query => ({ expr: `(${requests(version, ',response_code=~"5.."')} or vector(0))\n/ ${requests(version)}`, legend: `${version} ($${version})` })),
      unit: units.PercentUnit,
      width: 12,
      height: 8,
    })
      .min(0)
      .overrides(VERSION_COLORS),
  ];
}

function latencyPanel(): Panel {
  const quantiles = [
    { q: 0.5, name: 'p50' },
    { q: 0.95, name: 'p95' },
    { q: 0.99, name: 'p99' },
  ];
  const queries = VERSIONS.flatMap((version) =>
    quantiles.map(({ q, name }) => ({ expr: quantile(q, `istio_request_duration_milliseconds_bucket{${istio(version)}}`), legend: `${version} ${name}` })),
  );
  return timeseriesPanel({
    id: 12,
    title: 'Latency',
    description: 'Request duration per version from Istio\'s histogram: p50 dotted, p95 solid, p99 dashed. Compare the canary (orange) with stable (blue) at the same quantile.',
    queries,
    unit: units.Milliseconds,
    width: 12,
    height: 8,
  }).overrides([...VERSION_COLORS, byRegexp('/p50$/', lineStyle('dot')), byRegexp('/p99$/', lineStyle('dash'))]);
}

function checksPanels(): Panel[] {
  const checks = `modelcanary_analysis_checks_total{${CANARY}}`;
  return [
    stackedPanel({
      id: 13,
      title: 'Checks by verdict',
      description: 'Metric checks per minute by verdict. Fail (red) is measured-bad and leads to a rollback; inconclusive (yellow) and error (purple) mean the check could not measure, and the rollout holds.',
      queries: [{ expr: `60 * sum by (verdict) (rate(${checks}[$__rate_interval]))`, legend: '{{verdict}}' }],
      unit: units.CountsPerMinute,
      width: 12,
      height: 8,
    }).overrides(Object.entries(VERDICT_COLORS).map(([verdict, color]) => byName(verdict, fixedColor(color)))),
    tablePanel({ id: 14, title: 'Verdicts by metric', description: 'How many checks of each analysis metric passed, failed or could not judge in the time range.', queries: [{ expr: `round(sum by (metric, verdict) (increase(${checks}[$__range])))`, table: true }], width: 12, height: 8 })
      .withTransformation({ id: 'groupingToMatrix', options: { columnField: 'verdict', rowField: 'metric', valueField: 'Value', emptyValue: 'zero' } })
      .withTransformation({ id: 'organize', options: { renameByName: { 'metric\\verdict': 'metric' }, indexByName: { 'metric\\verdict': 0, pass: 1, fail: 2, inconclusive: 3, error: 4 } } })
      .decimals(0)
      .overrides(Object.entries(VERDICT_COLORS).map(([verdict, color]) => byName(verdict, fixedColor(color), { id: 'custom.cellOptions', value: { type: 'color-text' } }))),
  ];
}

function evidencePanel(): Panel {
  return timeseriesPanel({
    id: 15,
    title: 'Evidence',
    description: 'The run of consecutive inconclusive checks, and whether the controller is holding the canary for lack of evidence (1). A run that resets to 0 means a check could judge again.',
    queries: [
      { expr: `max(modelcanary_inconclusive_checks{${CANARY}})`, legend: 'inconclusive in a row' },
      { expr: `max(modelcanary_held_without_evidence{${CANARY}})`, legend: 'held without evidence' },
    ],
    unit: units.Short,
    width: 12,
    height: 8,
  })
    .min(0)
    .decimals(0)
    .lineInterpolation(common.LineInterpolation.StepAfter)
    .overrides([byName('inconclusive in a row', fixedColor('yellow')), byName('held without evidence', fixedColor('orange'), lineStyle('dash'))]);
}

function analysisPanel(): Panel {
  const metric = `${CANARY},metric="$metric"`;
  return timeseriesPanel({
    id: 16,
    title: 'Analysis: $metric',
    description: 'The value of this analysis metric at each check, per version, with the bound the canary is held to (red, dashed). errorRate is a ratio (0.01 = 1%), latency is in milliseconds, a prometheus metric is in its query\'s unit. The canary crossing its bound fails the check.',
    queries: [
      { expr: `max by (version) (modelcanary_analysis_metric_value{${metric}})`, legend: '{{version}}' },
      { expr: `max by (bound) (modelcanary_analysis_metric_bound{${metric}})`, legend: '{{bound}} bound' },
    ],
    width: 8,
    height: 8,
  })
    .repeat('metric')
    .repeatDirection('h')
    .maxPerRow(3)
    .lineInterpolation(common.LineInterpolation.StepAfter)
    .overrides([...VERSION_COLORS, byRegexp('/bound$/', fixedColor('red'), lineStyle('dash'))]);
}

export function rolloutDashboard(): DashboardBuilder {
  let builder = classicDashboard({
    title: 'ModelCanary rollout',
    uid: ROLLOUT_UID,
    description: 'One ModelCanary\'s rollout: phase, weights against the plan, each version\'s traffic, errors and latency, and every analysis check with its verdict.',
    from: 'now-1h',
  })
    .variables(variables())
    .annotations([...TRANSITIONS.map(transitionAnnotation), otherTransitionsAnnotation()]);
  // In reading order; the builder lays them out left to right, 24 columns to a row.
  const panels = [...statusRow(), phaseTimeline(), ...weightPanels(), ...trafficPanels(), latencyPanel(), ...checksPanels(), evidencePanel(), analysisPanel()];
  for (const panel of panels) builder = builder.withPanel(panel);
  return builder;
}
