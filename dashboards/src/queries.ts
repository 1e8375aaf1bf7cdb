// Reading the queries back out of dashboard JSON, for tests that check or run every one of them.
import { z } from 'zod';

export interface PanelQuery {
  panel: string;
  refId: string;
  expr: string;
}

const Target = z.looseObject({ refId: z.string().optional(), expr: z.string().optional() });

interface PanelJson {
  title?: string | undefined;
  targets?: z.infer<typeof Target>[] | undefined;
  panels?: PanelJson[] | undefined;
}

// Rows nest panels; a dashboard is a row at the top.
const PanelJson: z.ZodType<PanelJson> = z.lazy(() =>
  z.looseObject({ title: z.string().optional(), targets: z.array(Target).optional(), panels: z.array(PanelJson).optional() }),
);

const AnnotationJson = z.looseObject({ name: z.string(), expr: z.string().optional(), target: z.looseObject({ expr: z.string().optional() }).optional() });
const DashboardAnnotations = z.looseObject({ annotations: z.looseObject({ list: z.array(AnnotationJson).optional() }).optional() });

function* queriesOf(panel: PanelJson): Generator<PanelQuery> {
  for (const target of panel.targets ?? []) {
    if (target.expr !== undefined) yield { panel: panel.title ?? '', refId: target.refId ?? '', expr: target.expr };
  }
  for (const child of panel.panels ?? []) yield* queriesOf(child);
}

/** Every Prometheus query of every panel, in panel order. */
export function panelQueries(dashboard: object): PanelQuery[] {
  return [...queriesOf(PanelJson.parse(dashboard))];
}

/** Every Prometheus annotation query, named by the annotation (its `refId` is "Anno", as Grafana names it). */
export function annotationQueries(dashboard: object): PanelQuery[] {
  const annotations = DashboardAnnotations.parse(dashboard).annotations?.list ?? [];
  return annotations.flatMap((annotation) => {
    const expr = annotation.target?.expr ?? annotation.expr;
    return expr === undefined ? [] : [{ panel: annotation.name, refId: 'Anno', expr }];
  });
}
