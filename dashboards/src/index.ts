// The dashboards as files: what `npm run dashboards` writes and the tests compare against.
import { buildDashboard } from './classic.ts';
import { fleetDashboard } from './fleet.ts';
import { rolloutDashboard } from './rollout.ts';

export { annotationQueries, panelQueries, type PanelQuery } from './queries.ts';
export { FLEET_UID } from './fleet.ts';
export { ROLLOUT_UID } from './rollout.ts';

/** Where the same files go, from the repository's root: beside the generator, in the chart, in the kustomize base. */
export const DASHBOARD_DIRS: readonly string[] = ['dashboards', 'charts/modelcanary/dashboards', 'deploy/monitoring/dashboards'];

/** Each dashboard's JSON keyed by its file name. */
export function generateDashboards(): Record<string, object> {
  return {
    'modelcanary-rollout.json': buildDashboard(rolloutDashboard()),
    'modelcanary-fleet.json': buildDashboard(fleetDashboard()),
  };
}

/** The file's text: two-space JSON with a final newline, the same on every run. */
export function renderDashboard(dashboard: object): string {
  return `${JSON.stringify(dashboard, null, 2)}\n`;
}
