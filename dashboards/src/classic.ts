// Grafana's classic dashboard model (the JSON of schemaVersion 42). The SDK marks it deprecated
// in favour of its v2 resource, but v2 loads only in Grafana 12 with dynamic dashboards switched
// on; the classic model is what every current Grafana, file provisioning and the dashboard
// sidecar read, so it is the one we ship.
/* eslint-disable @typescript-eslint/no-deprecated -- the classic model on purpose, as said above */
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';

export type DashboardBuilder = dashboard.DashboardBuilder;
export type Dashboard = dashboard.Dashboard;

/** A dashboard of ours: tagged, linked to the others, refreshed every 30 s, with a shared crosshair. */
export function classicDashboard(spec: { title: string; uid: string; description: string; from: string }): DashboardBuilder {
  return new dashboard.DashboardBuilder(spec.title)
    .uid(spec.uid)
    .description(spec.description)
    .tags(['modelcanary'])
    .time({ from: spec.from, to: 'now' })
    .refresh('30s')
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .link(new dashboard.DashboardLinkBuilder('ModelCanary dashboards').type(dashboard.DashboardLinkType.Dashboards).tags(['modelcanary']).asDropdown(false).includeVars(false).keepTime(true).targetBlank(false).icon('external link').tooltip(''));
}

/**
 * The SDK files every annotation toggle and link under the dashboard's controls menu
 * ("inControlsMenu"); ours belong in the top bar, where Grafana puts them when no placement is given.
 */
export function buildDashboard(builder: DashboardBuilder): Dashboard {
  const built = builder.build();
  return {
    ...built,
    annotations: { ...built.annotations, list: built.annotations.list?.map(({ placement: _placement, ...annotation }) => annotation) },
    links: built.links?.map(({ placement: _placement, ...link }) => link),
  };
}
