// promote, abort, retry, approve, pause and resume: each writes the ModelCanary (a request
// annotation, or spec.suspend), conditional on the resourceVersion it read, so that RBAC decides
// who may and the API server's audit log records who did. The controller acts on the request
// and says so in an event; --wait follows it there.

import { AuthenticationV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import { ACTION_ANNOTATIONS, requestValue, SUSPENDED_BY_ANNOTATION, type Action, type ActionRequest } from '../api/actions.ts';
import { GROUP, PLURAL, VERSION } from '../api/modelcanary.ts';
import type { ModelCanaryStatus } from '../api/status.ts';
import { parseCommand } from './args.ts';
import { EXIT, type Io } from './io.ts';
import { KUBE_OPTIONS, KUBE_USAGE, kubeProblem, loadKube } from './kube.ts';

export type OperateCommand = 'promote' | 'abort' | 'retry' | 'approve' | 'pause' | 'resume';

const WHAT: Record<OperateCommand, string> = {
  promote: `promote NAME [--full]   move to the next step now, skipping the rest of this step's analysis;
                          --full: straight to 100 %, skipping every remaining step and gate`,
  abort: 'abort NAME              send all traffic back to stable now; the rollout ends RolledBack',
  retry: 'retry NAME              start a rolled-back rollout of the same versions again',
  approve: 'approve NAME [--gate G] open the manual gate the rollout waits at',
  pause: 'pause NAME              hold the rollout where it is (spec.suspend: true)',
  resume: 'resume NAME             let a paused rollout go on (spec.suspend: false)',
};

function usage(command: OperateCommand): string {
  return `Usage: modelcanary ${WHAT[command]}

Writes the ModelCanary (an annotation the controller acts on once, or spec.suspend), so
RBAC decides who may: it needs get and update on modelcanaries.modelcanary.io. The
controller records who asked in an event.

Flags:
${KUBE_USAGE}  --wait                wait (up to 60 s) until the controller has acted, and say what it did
  -h, --help            show this help

Exit codes: 0 done (or requested), 1 refused (nothing to ${command}), 2 could not run.
`;
}

/** The ModelCanary as read: only what this command touches is typed; the rest is written back as it came. */
interface Canary {
  metadata: { annotations?: Record<string, string>; generation?: number; [key: string]: unknown };
  spec?: { suspend?: boolean; [key: string]: unknown };
  status?: ModelCanaryStatus;
  [key: string]: unknown;
}

export async function runOperate(command: OperateCommand, args: string[], io: Io, env: Record<string, string | undefined> = process.env): Promise<number> {
  const parsed = parseCommand(command, args, { ...KUBE_OPTIONS, full: { type: 'boolean' }, gate: { type: 'string' }, wait: { type: 'boolean' } }, usage(command), io);
  if (typeof parsed === 'number') return parsed;
  const say = (text: string): void => void io.stderr.write(`modelcanary ${command}: ${text}\n`);
  const [name, ...extra] = parsed.positionals;
  if (name === undefined || extra.length > 0) {
    say(name === undefined ? 'name the ModelCanary: modelcanary ' + command + ' NAME' : `one ModelCanary at a time, not ${parsed.positionals.join(' ')}`);
    return EXIT.unreadable;
  }
  if (parsed.values.full === true && command !== 'promote') return (say('--full is for promote'), EXIT.unreadable);
  if (parsed.values.gate !== undefined && command !== 'approve') return (say('--gate is for approve'), EXIT.unreadable);
  const target = loadKube(parsed.values, env);
  if ('problem' in target) return (say(target.problem), EXIT.unreadable);
  const api = target.kubeConfig.makeApiClient(CustomObjectsApi);
  const resource = { group: GROUP, version: VERSION, plural: PLURAL, namespace: target.namespace, name };
  const by = await whoAmI(target.kubeConfig);

  // A write that raced another is decided again from a fresh read, a few times.
  for (let attempt = 0; ; attempt++) {
    let object: Canary;
    try {
      object = (await api.getNamespacedCustomObject(resource)) as Canary;
    } catch (error) {
      if ((error as { code?: number }).code === 404) say(`no ModelCanary "${name}" in namespace "${target.namespace}" (kubectl get mcan -n ${target.namespace} lists them)`);
      else say(kubeProblem(error, target.kubeConfig.getCurrentCluster()?.server));
      return EXIT.unreadable;
    }
    const status = object.status ?? {};
    const refusal = refusalOf(command, object, status, parsed.values.gate);
    if (refusal !== undefined) return (say(refusal), EXIT.invalid);
    const request: ActionRequest = { id: randomUUID(), by, at: new Date().toISOString(), ...(parsed.values.full === true ? { full: true } : {}), ...(parsed.values.gate === undefined ? {} : { gate: parsed.values.gate }) };
    const edited = edit(command, object, request);
    try {
      await api.replaceNamespacedCustomObject({ ...resource, body: edited, fieldManager: 'kubectl-modelcanary' });
    } catch (error) {
      if ((error as { code?: number }).code === 409 && attempt < 3) continue;
      say((error as { code?: number }).code === 403 ? `not allowed: ${kubeProblem(error)} (it needs update on modelcanaries.modelcanary.io in ${target.namespace})` : kubeProblem(error));
      return EXIT.unreadable;
    }
    io.stdout.write(`modelcanary.io/${name} ${requested(command, request)} by ${by}\n`);
    if (parsed.values.wait !== true) return EXIT.ok;
    return waitForController(api, resource, command, edited, io, say);
  }
}

/** Why the request makes no sense now, said before anything is written. */
function refusalOf(command: OperateCommand, object: Canary, status: ModelCanaryStatus, gate: string | undefined): string | undefined {
  const phase = status.phase ?? 'Pending';
  const suspended = object.spec?.suspend === true;
  switch (command) {
    case 'promote':
      return phase === 'Progressing' ? undefined : `nothing to promote: the rollout is ${phase}${phase === 'Paused' ? ' (resume it first)' : ''}`;
    case 'abort':
      return phase === 'Progressing' || phase === 'Paused' || phase === 'Failed' ? undefined : `nothing to abort: the rollout is ${phase}; no traffic is on the canary`;
    case 'retry':
      return phase === 'RolledBack' ? undefined : `only a rolled-back rollout can be retried; this one is ${phase}`;
    case 'approve':
      if (status.gate === undefined) return 'no gate waits for approval (kubectl modelcanary status shows what the rollout waits for)';
      if (status.gate.approval !== 'manual') return `gate ${status.gate.name} waits for its webhook, not for a person`;
      return gate === undefined || gate === status.gate.name ? undefined : `the rollout waits at gate ${status.gate.name}, not ${gate}`;
    case 'pause':
      return suspended ? 'already paused (spec.suspend is true)' : undefined;
    case 'resume':
      return suspended ? undefined : 'not paused (spec.suspend is false)';
  }
}

function edit(command: OperateCommand, object: Canary, request: ActionRequest): Canary {
  const metadata = { ...object.metadata, annotations: { ...object.metadata.annotations } };
  if (command === 'pause' || command === 'resume') {
    metadata.annotations[SUSPENDED_BY_ANNOTATION] = requestValue(request);
    return { ...object, metadata, spec: { ...object.spec, suspend: command === 'pause' } };
  }
  metadata.annotations[ACTION_ANNOTATIONS[command satisfies Action]] = requestValue(request);
  return { ...object, metadata };
}

function requested(command: OperateCommand, request: ActionRequest): string {
  switch (command) {
    case 'promote':
      return request.full === true ? 'full promotion (to 100 %, no further analysis) requested' : 'promotion to the next step requested';
    case 'pause':
      return 'paused';
    case 'resume':
      return 'resumed';
    default:
      return `${command} requested`;
  }
}

/** The user as the API server knows them (SelfSubjectReview), else as the kubeconfig names them. */
async function whoAmI(kubeConfig: KubeConfig): Promise<string> {
  try {
    const review = await kubeConfig.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
    const name = review.status?.userInfo?.username;
    if (name !== undefined && name !== '') return name;
  } catch {
    // An older server, or no permission: fall back to the kubeconfig's name for the user.
  }
  return kubeConfig.getCurrentUser()?.name ?? 'unknown';
}

/** Follows the request until the controller has acted on it; what it did, from the status. */
async function waitForController(api: CustomObjectsApi, resource: Parameters<CustomObjectsApi['getNamespacedCustomObject']>[0], command: OperateCommand, edited: Canary, io: Io, say: (text: string) => void): Promise<number> {
  const deadline = Date.now() + 60_000;
  const annotations = edited.metadata.annotations ?? {};
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    let object: Canary;
    try {
      object = (await api.getNamespacedCustomObject(resource)) as Canary;
    } catch (error) {
      say(kubeProblem(error));
      continue;
    }
    const status = object.status ?? {};
    if (actedOn(command, status, annotations, object)) {
      io.stdout.write(`${status.phase ?? 'Pending'}, canary at ${status.canaryWeight ?? 0} %: ${status.message ?? ''}\n`);
      return EXIT.ok;
    }
  }
  say('the controller has not acted on it within 60 s: is it running (kubectl get pods -n modelcanary-system)?');
  return EXIT.unreadable;
}

function actedOn(command: OperateCommand, status: ModelCanaryStatus, annotations: Record<string, string>, object: Canary): boolean {
  switch (command) {
    case 'promote':
    case 'abort':
    case 'approve':
      return status.handled?.[command] === annotations[ACTION_ANNOTATIONS[command]];
    case 'retry':
      return status.retry === annotations[ACTION_ANNOTATIONS.retry];
    case 'pause':
      return status.phase === 'Paused';
    case 'resume':
      return status.phase !== 'Paused' && status.observedGeneration === object.metadata.generation;
  }
}
