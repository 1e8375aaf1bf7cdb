import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { annotationQueries, DASHBOARD_DIRS, FLEET_UID, generateDashboards, panelQueries, renderDashboard, ROLLOUT_UID, type PanelQuery } from '../dashboards/src/index.ts';
import { BUILT_IN_VARIABLES } from '../dashboards/src/variables.ts';
import { ROOT } from './helpers/manifests.ts';

type Json = Record<string, any>;

const ALLOWED_PANEL_TYPES = ['timeseries', 'stat', 'state-timeline', 'table', 'text'];
const HIDDEN = 2;

const dashboards = generateDashboards() as Record<string, Json>;
const rollout = dashboards['modelcanary-rollout.json'] as Json;
const fleet = dashboards['modelcanary-fleet.json'] as Json;

function panelsOf(dashboard: Json): Json[] {
  return (dashboard.panels as Json[]).flatMap((panel) => [panel, ...((panel.panels ?? []) as Json[])]);
}

function variable(dashboard: Json, name: string): Json | undefined {
  return (dashboard.templating.list as Json[]).find((v) => v.name === name);
}

/** Every PromQL expression of a dashboard, panels and annotations alike. */
function allQueries(dashboard: Json): PanelQuery[] {
  return [...panelQueries(dashboard), ...annotationQueries(dashboard)];
}

/** Variable names a query uses: `$name`, `${name}`, `${name:format}`, `[[name]]`. */
function variablesUsed(text: string): string[] {
  return [...text.matchAll(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g)].map((match) => match[1] ?? match[2] ?? match[3] ?? '');
}

/** The first bracket out of place in a PromQL expression (strings skipped), or undefined. */
function unbalanced(expr: string): string | undefined {
  const closing: Record<string, string> = { ')': '(', '}': '{', ']': '[' };
  const open: string[] = [];
  const code = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (let index = 0; index < code.length; index++) {
    const char = code.charAt(index);
    if ('({['.includes(char)) open.push(char);
    if (char in closing && open.pop() !== closing[char]) return `${char} at ${index}`;
  }
  return open.length === 0 ? undefined : `${open.join('')} never closed`;
}

for (const [file, dashboard] of Object.entries(dashboards)) {
  test(`${file}: the committed copies are what the generator writes (run npm run dashboards)`, () => {
    const expected = renderDashboard(dashboard);
    assert.equal(renderDashboard(generateDashboards()[file] ?? {}), expected, 'the generator is deterministic');
    for (const dir of DASHBOARD_DIRS) {
      const path = fileURLToPath(new URL(`${dir}/${file}`, ROOT));
      let committed = '';
      try {
        committed = readFileSync(path, 'utf8');
      } catch {
        assert.fail(`${dir}/${file} is missing: run npm run dashboards`);
      }
      assert.ok(committed === expected, `${dir}/${file} is not what dashboards/src generates: run npm run dashboards`);
    }
  });

  test(`${file}: current Grafana JSON, with only the panel types it renders natively`, () => {
    assert.ok(dashboard.schemaVersion >= 39, `schemaVersion ${dashboard.schemaVersion}`);
    for (const panel of panelsOf(dashboard)) {
      assert.ok(ALLOWED_PANEL_TYPES.includes(panel.type), `${panel.title}: ${panel.type} (Angular graph and singlestat no longer load)`);
      assert.ok(typeof panel.title === 'string' && panel.title.length > 0 && panel.title.length <= 40, `a short title: ${panel.title}`);
      assert.ok(typeof panel.description === 'string' && panel.description.length > 0, `${panel.title} says what to look for`);
    }
    const ids = panelsOf(dashboard).map((panel) => panel.id);
    assert.ok(ids.every((id) => Number.isInteger(id)), 'every panel has a fixed id');
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  });

  test(`${file}: every panel queries Prometheus through the $datasource variable`, () => {
    for (const panel of panelsOf(dashboard)) {
      const targets = (panel.targets ?? []) as Json[];
      assert.ok(targets.some((target) => typeof target.expr === 'string' && target.expr.trim() !== ''), `${panel.title} has a query`);
      assert.equal(panel.datasource?.uid, '${datasource}', `${panel.title}'s data source`);
      for (const target of targets) assert.equal(target.datasource?.uid, '${datasource}', `${panel.title} ${target.refId}'s data source`);
    }
    for (const annotation of dashboard.annotations.list as Json[]) assert.equal(annotation.datasource?.uid, '${datasource}', annotation.name);
    assert.equal(variable(dashboard, 'datasource')?.type, 'datasource');
    assert.equal(variable(dashboard, 'datasource')?.query, 'prometheus');
  });

  test(`${file}: every query is balanced and uses only variables the dashboard defines`, () => {
    const defined = new Set([...(dashboard.templating.list as Json[]).map((v) => v.name as string), ...BUILT_IN_VARIABLES]);
    const variableQueries = (dashboard.templating.list as Json[]).filter((v) => v.type === 'query').map((v) => ({ panel: `variable ${v.name}`, refId: '', expr: v.query as string }));
    const queries = [...allQueries(dashboard), ...variableQueries];
    assert.ok(queries.length > 0);
    for (const query of queries) {
      const where = `${query.panel} ${query.refId}: ${query.expr}`;
      assert.equal(unbalanced(query.expr), undefined, where);
      for (const name of variablesUsed(query.expr)) assert.ok(defined.has(name), `$${name} is not defined — ${where}`);
    }
  });
}

test('the dashboards have fixed, distinct uids', () => {
  assert.equal(rollout.uid, ROLLOUT_UID);
  assert.equal(fleet.uid, FLEET_UID);
  assert.deepEqual([rollout.uid, fleet.uid], ['modelcanary-rollout', 'modelcanary-fleet']);
  for (const uid of [rollout.uid, fleet.uid]) assert.ok(/^[a-z0-9-]{1,40}$/.test(uid), uid);
});

test('the rollout dashboard picks one ModelCanary and derives its model and versions for the Istio queries', () => {
  const cases = [
    { name: 'namespace', hidden: false, multi: false },
    { name: 'modelcanary', hidden: false, multi: false },
    { name: 'model', hidden: true, multi: false },
    { name: 'stable', hidden: true, multi: false },
    { name: 'canary', hidden: true, multi: false },
  ];
  for (const c of cases) {
    const v = variable(rollout, c.name);
    assert.ok(v !== undefined, `$${c.name}`);
    assert.equal(v.type, 'query', c.name);
    assert.equal(v.hide === HIDDEN, c.hidden, `$${c.name} hidden`);
    assert.equal(v.multi === true, c.multi, `$${c.name} multi`);
  }
  for (const name of ['model', 'stable', 'canary']) {
    assert.match(variable(rollout, name)?.query, new RegExp(`label_values\\(modelcanary_rollout_info\\{namespace="\\$namespace",name="\\$modelcanary"\\}, ${name}\\)`));
  }
  const istio = panelQueries(rollout).filter((query) => query.expr.includes('istio_'));
  assert.ok(istio.length >= 4, 'requests, 5xx and latency per version');
  for (const query of istio) assert.match(query.expr, /destination_canonical_service="\$model",destination_canonical_revision="\$(stable|canary)"/, query.panel);
});

test('the fleet dashboard shows every namespace by default and can narrow to some', () => {
  const namespace = variable(fleet, 'namespace');
  assert.ok(namespace !== undefined);
  assert.equal(namespace.multi, true);
  assert.equal(namespace.includeAll, true);
  assert.deepEqual(namespace.current.value, ['$__all']);
});

test('the rollout dashboard marks starts, steps, promotions and rollbacks on every panel', () => {
  const annotations = annotationQueries(rollout);
  for (const event of ['started', 'advanced', 'promoted', 'rolledBack']) {
    const annotation = annotations.find((a) => a.expr.includes(`event="${event}"`));
    assert.ok(annotation !== undefined, event);
    assert.match(annotation.expr, /^modelcanary_transitions_total\{/);
  }
  const enabled = (rollout.annotations.list as Json[]).filter((a) => a.enable === true).map((a) => a.name);
  assert.deepEqual(enabled, ['Started', 'Advanced', 'Promoted', 'Rolled back']);
});

test('panel queries name their panel and refId, one per target', () => {
  const queries = panelQueries(rollout);
  const targets = panelsOf(rollout).flatMap((panel) => panel.targets as Json[]);
  assert.equal(queries.length, targets.length);
  assert.deepEqual(queries[0] && { panel: queries[0].panel, refId: queries[0].refId }, { panel: 'Phase', refId: 'A' });
});

/** Grafana's interpolation, roughly: enough for Prometheus to parse what the panel would send. */
function interpolated(expr: string): string {
  const durations: Record<string, string> = { __rate_interval: '1m', __interval: '30s', __range: '1h' };
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (_all, braced?: string, bare?: string) => durations[braced ?? bare ?? ''] ?? 'value');
}

function promtoolMissing(): string | undefined {
  return spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error === undefined ? undefined : 'promtool is not installed: apt-get install -y prometheus';
}

test("every query parses with Prometheus's own parser (promtool check rules)", { skip: promtoolMissing() }, () => {
  const queries = Object.values(dashboards).flatMap(allQueries);
  const rules = queries.map((query, index) => ({ record: `dashboard_query_${index}`, expr: interpolated(query.expr) }));
  const dir = mkdtempSync(join(tmpdir(), 'dashboards-'));
  try {
    const file = join(dir, 'queries.json');
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboards', rules }] }));
    try {
      execFileSync('promtool', ['check', 'rules', file], { encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      const output = error instanceof Error && 'stdout' in error ? `${String(error.stdout)}${String((error as Json).stderr)}` : String(error);
      const named = queries.map((query, index) => `dashboard_query_${index}: ${query.panel} ${query.refId}`).join('\n');
      assert.fail(`promtool rejected a query:\n${output}\n${named}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
