// PromQL idioms the panels share, named for what they answer.

/**
 * A counter's series where it went up within the last rate interval — one annotation region
 * per event. `increase()` cannot see a counter's first sample, so a series born already counting
 * (a transition that is not pre-initialised to 0) is compared with 0 instead of its past.
 */
export function counterRoseRecently(series: string): string {
  return `${series} - (${series} offset $__rate_interval or ${series} * 0) > 0`;
}

/**
 * `sum by (label)` that still shows 0 for each expected value before its counter exists: a
 * counter that is not pre-initialised appears only on its first increment.
 */
export function withZeros(expr: string, label: string, values: readonly string[]): string {
  return [expr, ...values.map((value) => `label_replace(vector(0), "${label}", "${value}", "", "")`)].join('\nor ');
}

/** A quantile of a histogram's observations per interval, aggregated over every other label. */
export function quantile(q: number, bucket: string, by: readonly string[] = [], window = '$__rate_interval'): string {
  return `histogram_quantile(${q}, sum by (${['le', ...by].join(', ')}) (rate(${bucket}[${window}])))`;
}
