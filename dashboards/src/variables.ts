// Template variables. Query variables refresh with the time range, so a ModelCanary created a
// minute ago is offered without reloading the dashboard.
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { DATASOURCE } from './panels.ts';

/** Grafana's own variables that a query may use without defining them. */
export const BUILT_IN_VARIABLES: readonly string[] = ['__interval', '__interval_ms', '__rate_interval', '__range', '__range_s', '__range_ms', '__dashboard', '__from', '__to'];

export function datasourceVariable(): dashboard.DatasourceVariableBuilder {
  return new dashboard.DatasourceVariableBuilder('datasource').label('Data source').type('prometheus');
}

interface LabelValues {
  name: string;
  label: string;
  /** `label_values(...)`: the variable offers every value of one label of one selector. */
  query: string;
  hidden?: boolean;
}

export function labelValuesVariable(spec: LabelValues): dashboard.QueryVariableBuilder {
  return new dashboard.QueryVariableBuilder(spec.name)
    .label(spec.label)
    .datasource(DATASOURCE)
    .query(spec.query)
    .definition(spec.query)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .hide(spec.hidden === true ? dashboard.VariableHide.HideVariable : dashboard.VariableHide.DontHide);
}

/**
 * A variable that offers "All" first. `allValue` is the regex "All" stands for; without it,
 * "All" means the values found, which keeps a generic label such as `job` to our own series.
 */
export function multiValueVariable(spec: LabelValues, allValue?: string): dashboard.QueryVariableBuilder {
  const builder = labelValuesVariable(spec).multi(true).includeAll(true).current({ selected: true, text: ['All'], value: ['$__all'] });
  return allValue === undefined ? builder : builder.allValue(allValue);
}
