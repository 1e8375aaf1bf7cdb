import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { Analysis } from '../../src/api/modelcanary.ts';
import { checkModelCanary } from '../../src/api/validate.ts';

export const ROOT = new URL('../../', import.meta.url);

/** A valid ModelCanary using Istio, as a plain object a test may edit. */
export function istioManifest(): Record<string, any> {
  return {
    apiVersion: 'modelcanary.io/v1alpha1',
    kind: 'ModelCanary',
    metadata: { name: 'fraud-detector', namespace: 'ml-serving' },
    spec: {
      model: 'fraud-detector',
      stable: { version: 'v1', destination: { host: 'fraud-detector', subset: 'v1' } },
      canary: { version: 'v2', destination: { host: 'fraud-detector', subset: 'v2' } },
      trafficRouting: { istio: { virtualService: 'fraud-detector' } },
      analysis: {
        metrics: [
          { name: 'error-rate', type: 'errorRate', max: 0.01 },
          { name: 'p99', type: 'latency', quantile: 0.99, maxMs: 500 },
          { name: 'ttft', type: 'prometheus', query: 'vllm_ttft{model="{{ model }}",version="{{ version }}"}', max: 2.5 },
        ],
      },
    },
  };
}

/** The analysis of istioManifest() with these metrics, then `edit`, parsed as the controller parses it (defaults filled in). */
export function parsedAnalysis(metrics: Record<string, unknown>[], edit: (analysis: Record<string, any>) => void = () => undefined): Analysis {
  const manifest = istioManifest();
  manifest.spec.analysis.metrics = metrics;
  edit(manifest.spec.analysis);
  const result = checkModelCanary(manifest);
  assert.ok(result.ok, JSON.stringify(result.ok ? '' : result.problems));
  return result.value.spec.analysis;
}

/** The ModelCanary documents of examples/*.yaml, with the file each came from. */
export function exampleManifests(): { file: string; manifest: Record<string, unknown> }[] {
  const dir = new URL('examples/', ROOT);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((file) =>
      parseAllDocuments(readFileSync(new URL(file, dir), 'utf8'))
        .map((d) => d.toJS() as unknown)
        .filter((m): m is Record<string, unknown> => typeof m === 'object' && m !== null && (m as { kind?: unknown }).kind === 'ModelCanary')
        .map((manifest) => ({ file, manifest })),
    );
}
