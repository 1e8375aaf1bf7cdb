// Every ModelCanary at once, and the controller that drives them: what is rolling out, how
// rollouts end, and whether the controller itself is healthy.
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as units from '@grafana/grafana-foundation-sdk/units';
import { classicDashboard, type DashboardBuilder } from './classic.ts';
import { barsPanel, byName, DATASOURCE, fixedColor, lineStyle, statPanel, tablePanel, thresholds, timeseriesPanel, type Panel } from './panels.ts';
import { phaseNameMappings, type Phase } from './phases.ts';
import { counterRoseRecently, quantile, withZeros } from './promql.ts';
import { ROLLOUT_UID } from './rollout.ts';
import { datasourceVariable, multiValueVariable } from './variables.ts';

export const FLEET_UID = 'modelcanary-fleet';

const NAMESPACES = 'namespace=~"$namespace"';
/** `up` and the process metrics are generic names: keep them to the controller's scrape job. */
const CONTROLLER = 'job=~"$job"';

const OUTCOME_COLORS = [byName('promoted', fixedColor('green')), byName('rolledBack', fixedColor('red'))];

function variables(): cog.Builder<dashboard.VariableModel>[] {
  return [
    datasourceVariable(),
    multiValueVariable({ name: 'namespace', label: 'Namespace', query: 'label_values(modelcanary_rollout_info, namespace)' }, '.+'),
    multiValueVariable({ name: 'job', label: 'Controller job', query: 'label_values(modelcanary_info, job)', hidden: true }),
  ];
}

function rolloutsEndedAnnotation(): dashboard.AnnotationQueryBuilder {
  return new dashboard.AnnotationQueryBuilder()
    .name('Rollouts ended')
    .datasource(DATASOURCE)
    .enable(true)
    .hide(false)
    .iconColor('purple')
    .expr(counterRoseRecently(`modelcanary_rollouts_total{${NAMESPACES}}`))
    .titleFormat('{{namespace}}/{{name}} {{outcome}}')
    .textFormat('The rollout of {{namespace}}/{{name}} ended: {{outcome}}')
    .tagKeys('outcome')
    .useValueForTime(false);
}

function inPhase(phase: Phase): string {
  return `count(modelcanary_phase{${NAMESPACES},phase="${phase}"} == 1) or vector(0)`;
}

function statusRow(): Panel[] {
  const size = { width: 4, height: 4 };
  return [
    statPanel({ id: 1, title: 'In progress', description: 'ModelCanaries stepping through their plan now (phase Progressing).', queries: [{ expr: inPhase('Progressing'), legend: 'progressing' }], ...size })
      .thresholds(thresholds('blue'))
      .decimals(0),
    statPanel({ id: 2, title: 'Paused', description: 'ModelCanaries waiting for someone to resume them.', queries: [{ expr: inPhase('Paused'), legend: 'paused' }], ...size })
      .thresholds(thresholds('green', [1, 'yellow']))
      .decimals(0),
    statPanel({ id: 3, title: 'Held without evidence', description: 'Canaries held at their weight because checks keep coming back inconclusive: usually no traffic to the canary or a metric query that returns nothing. The table below says which.', queries: [{ expr: `sum(modelcanary_held_without_evidence{${NAMESPACES}}) or vector(0)`, legend: 'held' }], ...size })
      .thresholds(thresholds('green', [1, 'orange']))
      .decimals(0),
    statPanel({ id: 4, title: 'Failed', description: 'ModelCanaries in phase Failed: the controller could not carry out the rollout (for example an invalid spec or a route it cannot find). Their conditions say why.', queries: [{ expr: inPhase('Failed'), legend: 'failed' }], ...size })
      .thresholds(thresholds('green', [1, 'red']))
      .decimals(0),
    statPanel({ id: 5, title: 'Controllers up', description: 'Controller replicas Prometheus scrapes successfully. 0 means no replica is reachable and no rollout moves.', queries: [{ expr: `sum(up{${CONTROLLER}}) or vector(0)`, legend: 'up' }], ...size })
      .thresholds(thresholds('red', [1, 'green']))
      .decimals(0),
    statPanel({ id: 6, title: 'Leaders', description: 'Replicas that lead (or run without election). Exactly 1 is healthy: 0 means nothing reconciles, more than 1 means two replicas act on the same rollouts.', queries: [{ expr: 'sum(modelcanary_leader) or vector(0)', legend: 'leaders' }], ...size })
      .thresholds(thresholds('red', [1, 'green'], [2, 'red']))
      .decimals(0),
  ];
}

function canariesTable(): Panel {
  const by = (metric: string) => `max by (namespace, name) (${metric}{${NAMESPACES}})`;
  const rolloutLink = `/d/${ROLLOUT_UID}?var-datasource=\${datasource}&var-namespace=\${__data.fields.namespace}&var-modelcanary=\${__data.fields.name}&\${__url_time_range}`;
  return tablePanel({
    id: 7,
    title: 'ModelCanaries',
    description: 'Every ModelCanary now: its model and versions, phase, step and weight. A name links to its rollout dashboard. Inconclusive counts checks in a row that could not judge.',
    queries: [
      { expr: `max by (namespace, name, phase) (modelcanary_phase{${NAMESPACES}} == 1)`, table: true },
      { expr: `max by (namespace, name, model, stable, canary) (modelcanary_rollout_info{${NAMESPACES}})`, table: true },
      { expr: by('modelcanary_step'), table: true },
      { expr: by('modelcanary_steps'), table: true },
      { expr: by('modelcanary_canary_weight'), table: true },
      { expr: by('modelcanary_inconclusive_checks'), table: true },
      { expr: by('modelcanary_held_without_evidence'), table: true },
    ],
    width: 24,
    height: 9,
  })
    .withTransformation({ id: 'merge', options: {} })
    .withTransformation({
      id: 'organize',
      options: {
        excludeByName: { Time: true, 'Value #A': true, 'Value #B': true },
        indexByName: { namespace: 0, name: 1, model: 2, phase: 3, stable: 4, canary: 5, 'Value #C': 6, 'Value #D': 7, 'Value #E': 8, 'Value #F': 9, 'Value #G': 10 },
        renameByName: { 'Value #C': 'Step', 'Value #D': 'Steps', 'Value #E': 'Canary weight', 'Value #F': 'Inconclusive', 'Value #G': 'Held without evidence' },
      },
    })
    .sortBy([new common.TableSortByFieldStateBuilder().displayName('name').desc(false)])
    .overrides([
      byName('name', { id: 'links', value: [{ title: 'Rollout of ${__data.fields.namespace}/${__data.fields.name}', url: rolloutLink }] }),
      byName('phase', { id: 'mappings', value: phaseNameMappings() }, { id: 'custom.cellOptions', value: { type: 'color-text' } }),
      byName('Canary weight', { id: 'unit', value: units.Percent }, { id: 'decimals', value: 0 }),
      byName('Step', { id: 'decimals', value: 0 }),
      byName('Steps', { id: 'decimals', value: 0 }),
      byName('Inconclusive', { id: 'decimals', value: 0 }),
      byName('Held without evidence', {
        id: 'mappings',
        value: [{ type: 'value', options: { '0': { text: 'no', index: 0 }, '1': { text: 'yes', color: 'orange', index: 1 } } }],
      }, { id: 'custom.cellOptions', value: { type: 'color-text' } }),
    ]);
}

function outcomePanels(): Panel[] {
  const rollouts = `modelcanary_rollouts_total{${NAMESPACES}}`;
  const duration = 'modelcanary_rollout_duration_seconds';
  // NaN (no rollout of that outcome ended in the range) is dropped rather than shown.
  const durationQuantile = (q: number, name: string) => ({ expr: `${quantile(q, `${duration}_bucket`, ['outcome'], '$__range')} >= 0`, legend: `{{outcome}} ${name}`, instant: true });
  return [
    barsPanel({ id: 8, title: 'Rollouts ended', description: 'Rollouts that ended in each interval: promoted (green) or rolled back (red). A run of red means canaries keep failing their checks.', queries: [{ expr: `sum by (outcome) (increase(${rollouts}[$__interval]))`, legend: '{{outcome}}' }], unit: units.Short, width: 8, height: 8 })
      .interval('1m')
      .decimals(0)
      .overrides(OUTCOME_COLORS),
    statPanel({ id: 9, title: 'Outcomes', description: 'Rollouts promoted and rolled back in the time range.', queries: [{ expr: `round(sum by (outcome) (increase(${rollouts}[$__range])))`, legend: '{{outcome}}', instant: true }], width: 4, height: 8 })
      .textMode(common.BigValueTextMode.ValueAndName)
      .orientation(common.VizOrientation.Horizontal)
      .decimals(0)
      .thresholds(thresholds('text'))
      .overrides(OUTCOME_COLORS),
    statPanel({
      id: 10,
      title: 'Time to promote or roll back',
      description: 'How long rollouts that ended in the time range took from start to promotion or rollback: median, 90th percentile (estimated from the histogram\'s buckets: 1 min, 5 min, 15 min, …) and mean. All namespaces: the histogram has no namespace label.',
      queries: [durationQuantile(0.5, 'p50'), durationQuantile(0.9, 'p90'), { expr: `sum by (outcome) (increase(${duration}_sum[$__range]))\n/ sum by (outcome) (increase(${duration}_count[$__range])) >= 0`, legend: '{{outcome}} mean', instant: true }],
      unit: units.Seconds,
      width: 12,
      height: 8,
    })
      .textMode(common.BigValueTextMode.ValueAndName)
      .thresholds(thresholds('text'))
      .noValue('No rollout ended in the time range'),
  ];
}

/** p50 and p99 of a duration histogram in seconds, p99 dashed. */
function durationPanel(id: number, title: string, description: string, bucket: string): Panel {
  return timeseriesPanel({
    id,
    title,
    description,
    queries: [{ expr: quantile(0.5, bucket), legend: 'p50' }, { expr: quantile(0.99, bucket), legend: 'p99' }],
    unit: units.Seconds,
    width: 12,
    height: 8,
  }).overrides([byName('p99', lineStyle('dash'))]);
}

function reconcilePanels(): Panel[] {
  const bucket = 'modelcanary_reconcile_duration_seconds_bucket';
  return [
    durationPanel(11, 'Reconcile duration', 'How long one reconcile pass takes, p50 and p99. A p99 near the reconcile interval means rollouts are judged late.', bucket),
    timeseriesPanel({
      id: 12,
      title: 'Reconcile errors',
      description: 'Failed reconciles per minute, per ModelCanary; each is retried. A steady rate points at the API server, the mesh or Prometheus: the controller logs say which.',
      queries: [{ expr: `60 * sum by (namespace, name) (rate(modelcanary_reconcile_errors_total{${NAMESPACES}}[$__rate_interval]))`, legend: '{{namespace}}/{{name}}' }],
      unit: units.CountsPerMinute,
      width: 12,
      height: 8,
    }).min(0),
  ];
}

function prometheusPanels(): Panel[] {
  const bucket = 'modelcanary_prometheus_query_duration_seconds_bucket';
  const count = 'modelcanary_prometheus_query_duration_seconds_count';
  return [
    durationPanel(13, 'Prometheus query latency', 'How long the analysis queries to Prometheus take, p50 and p99. Slow queries delay every check.', bucket),
    timeseriesPanel({
      id: 14,
      title: 'Prometheus queries',
      description: 'Analysis queries per second by outcome. Errors make checks inconclusive: the rollout holds instead of judging.',
      queries: [{ expr: withZeros(`sum by (outcome) (rate(${count}[$__rate_interval]))`, 'outcome', ['ok', 'error']), legend: '{{outcome}}' }],
      unit: units.RequestsPerSecond,
      width: 12,
      height: 8,
    })
      .min(0)
      .overrides([byName('ok', fixedColor('green')), byName('error', fixedColor('red'))]),
  ];
}

function controllerPanels(): Panel[] {
  const notifications = 'sum by (outcome) (increase(modelcanary_notifications_total[$__interval]))';
  return [
    barsPanel({
      id: 15,
      title: 'Notifications',
      description: 'Notifications by outcome in each interval. Retried is a destination that failed once and is tried again; rejected (the destination refused it) and gave up (retries exhausted) were never delivered.',
      queries: [{ expr: withZeros(notifications, 'outcome', ['delivered', 'retried', 'rejected', 'gaveUp']), legend: '{{outcome}}' }],
      unit: units.Short,
      width: 8,
      height: 8,
    })
      .interval('1m')
      .decimals(0)
      .overrides([byName('delivered', fixedColor('green')), byName('retried', fixedColor('yellow')), byName('rejected', fixedColor('orange')), byName('gaveUp', fixedColor('red'))]),
    timeseriesPanel({
      id: 16,
      title: 'Controller memory',
      description: 'Resident memory of each controller replica. Steady growth across many rollouts is a leak.',
      queries: [{ expr: `process_resident_memory_bytes{${CONTROLLER}}`, legend: '{{instance}}' }],
      unit: units.BytesIEC,
      width: 8,
      height: 8,
    }).min(0),
    tablePanel({
      id: 17,
      title: 'Controller replicas',
      description: 'Each replica: its version, whether Prometheus reaches it, and whether it leads.',
      queries: [
        { expr: `max by (instance, version) (modelcanary_info{${CONTROLLER}})`, table: true },
        { expr: `max by (instance) (up{${CONTROLLER}})`, table: true },
        { expr: `max by (instance) (modelcanary_leader{${CONTROLLER}})`, table: true },
      ],
      width: 8,
      height: 8,
    })
      .withTransformation({ id: 'merge', options: {} })
      .withTransformation({
        id: 'organize',
        options: { excludeByName: { Time: true, 'Value #A': true }, indexByName: { instance: 0, version: 1, 'Value #B': 2, 'Value #C': 3 }, renameByName: { 'Value #B': 'Up', 'Value #C': 'Leader' } },
      })
      .overrides([
        byName('Up', { id: 'mappings', value: [{ type: 'value', options: { '0': { text: 'down', color: 'red', index: 0 }, '1': { text: 'up', color: 'green', index: 1 } } }] }, { id: 'custom.cellOptions', value: { type: 'color-text' } }),
        byName('Leader', { id: 'mappings', value: [{ type: 'value', options: { '0': { text: 'standby', index: 0 }, '1': { text: 'leader', color: 'blue', index: 1 } } }] }, { id: 'custom.cellOptions', value: { type: 'color-text' } }),
      ]),
  ];
}

export function fleetDashboard(): DashboardBuilder {
  let builder = classicDashboard({
    title: 'ModelCanary fleet',
    uid: FLEET_UID,
    description: 'Every ModelCanary and the controller: rollouts in progress, how they end and how long they take, and the controller\'s own health.',
    from: 'now-6h',
  })
    .variables(variables())
    .annotation(rolloutsEndedAnnotation());
  // In reading order; the builder lays them out left to right, 24 columns to a row.
  const panels = [...statusRow(), canariesTable(), ...outcomePanels(), ...reconcilePanels(), ...prometheusPanels(), ...controllerPanels()];
  for (const panel of panels) builder = builder.withPanel(panel);
  return builder;
}
