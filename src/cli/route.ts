import { stringify } from 'yaml';
import { INFERENCE_POOL_GROUP, KIND, type ModelCanary } from '../api/modelcanary.ts';
import { checkModelCanary } from '../api/validate.ts';
import { createRouter, MemoryObjectStore } from '../routing/router.ts';
import { isRecord, readYamlFile } from './files.ts';
import { EXIT, type Io } from './io.ts';
import { parseCommand } from './args.ts';

const USAGE = `Usage: modelcanary route --canary FILE --route FILE --weight N [--pin] [-o yaml|json]

Prints the VirtualService or HTTPRoute of --route as the controller would write it with the
canary at N % (with the canary pin route when --pin): a dry run of the router. Versions may be
Services or, with gatewayAPI, InferencePools; InferencePools in either file are checked against
the ones the ModelCanary names.
Exit status: 0 printed, 1 the route does not fit the ModelCanary, 2 a file cannot be read.
`;

const ROUTE_KINDS = new Set(['VirtualService', 'HTTPRoute']);

export async function runRoute(args: string[], io: Io): Promise<number> {
  const parsed = parseCommand(
    'route',
    args,
    {
      canary: { type: 'string' },
      route: { type: 'string' },
      weight: { type: 'string' },
      pin: { type: 'boolean' },
      output: { type: 'string', short: 'o', default: 'yaml' },
    },
    USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const weight = Number(values.weight);
  if (values.canary === undefined || values.route === undefined || values.weight === undefined) {
    io.stderr.write(`modelcanary route: --canary, --route and --weight are required\n\n${USAGE}`);
    return EXIT.unreadable;
  }
  if (!Number.isInteger(weight) || weight < 0 || weight > 100) {
    io.stderr.write(`modelcanary route: --weight must be a whole number from 0 to 100, not ${values.weight}\n`);
    return EXIT.invalid;
  }
  if (values.output !== 'yaml' && values.output !== 'json') {
    io.stderr.write(`modelcanary route: -o must be yaml or json, not ${values.output}\n`);
    return EXIT.unreadable;
  }
  const canaryFile = await readYamlFile(values.canary, io);
  const routeFile = await readYamlFile(values.route, io);
  for (const file of [canaryFile, routeFile]) if (!file.ok) io.stderr.write(`${file.messages.join('\n')}\n`);
  if (!canaryFile.ok || !routeFile.ok) return EXIT.unreadable;

  const canaryDocument = canaryFile.documents.map((d) => d.toJS() as unknown).find((d) => isRecord(d) && d.kind === KIND);
  const checked = canaryDocument === undefined ? undefined : checkModelCanary(canaryDocument);
  if (checked === undefined || !checked.ok) {
    const problems = checked === undefined ? [`no ${KIND} in this file`] : checked.problems.map((p) => `${p.path}: ${p.message}`);
    for (const p of problems) io.stderr.write(`${values.canary}: ${p}\n`);
    return EXIT.invalid;
  }
  const canary = checked.value;
  const wanted = canary.spec.trafficRouting.istio === undefined ? 'HTTPRoute' : 'VirtualService';
  const routes = routeFile.documents.map((d) => d.toJS() as unknown).filter((d): d is Record<string, unknown> => isRecord(d) && ROUTE_KINDS.has(String(d.kind)));
  const route = routes.find((r) => r.kind === wanted);
  if (route === undefined) {
    io.stderr.write(`${values.route}: no ${wanted} in this file; spec.trafficRouting of ${KIND} ${canary.metadata.name} uses ${wanted === 'VirtualService' ? 'istio' : 'gatewayAPI'}\n`);
    return EXIT.invalid;
  }
  // The route is read from the file as if it were live in the ModelCanary's namespace.
  const namespace = canary.metadata.namespace ?? 'default';
  const metadata = isRecord(route.metadata) ? route.metadata : {};
  const store = new MemoryObjectStore();
  store.put({ ...route, metadata: { ...metadata, namespace } });
  const result = await createRouter(canary, store).apply({ weight, pin: values.pin === true, stage: 'during' });
  if (!result.ok) {
    io.stderr.write(`${values.route}: ${result.problem}\n`);
    return EXIT.invalid;
  }
  const written = await store.get(String(route.apiVersion), wanted, namespace, typeof metadata.name === 'string' ? metadata.name : '');
  const { resourceVersion: _version, ...cleanMetadata } = (written?.metadata ?? {}) as Record<string, unknown>;
  const output = { ...written, metadata: cleanMetadata };
  io.stdout.write(values.output === 'json' ? `${JSON.stringify(output, null, 2)}\n` : stringify(output, { lineWidth: 0, aliasDuplicateObjects: false }));
  const documents = [...canaryFile.documents, ...routeFile.documents].map((d) => d.toJS() as unknown).filter(isRecord);
  for (const note of poolNotes(canary, documents)) io.stderr.write(`${values.route}: note: ${note}\n`);
  return EXIT.ok;
}

/**
 * When the files hold InferencePools, the ones the ModelCanary names that they lack or hold in
 * another API version than v1: the route printed would send that share to no pool.
 */
function poolNotes(canary: ModelCanary, documents: readonly Record<string, unknown>[]): string[] {
  const pools = documents.filter((d) => d.kind === 'InferencePool');
  if (pools.length === 0) return [];
  const notes: string[] = [];
  for (const which of ['stable', 'canary'] as const) {
    const name = canary.spec[which].destination.inferencePool;
    if (name === undefined) continue;
    const pool = pools.find((p) => isRecord(p.metadata) && p.metadata.name === name);
    const field = `spec.${which}.destination.inferencePool`;
    if (pool === undefined) {
      notes.push(`InferencePool ${name} (${field}) is not among the InferencePools in these files; the gateway has nowhere to send ${which}'s share until it exists`);
    } else if (pool.apiVersion !== `${INFERENCE_POOL_GROUP}/v1`) {
      notes.push(`InferencePool ${name} (${field}) is ${String(pool.apiVersion)}, but the backendRefs written name InferencePool v1 (group ${INFERENCE_POOL_GROUP}): create it as apiVersion ${INFERENCE_POOL_GROUP}/v1`);
    }
  }
  return notes;
}
