// What may hold a step that its checks passed: a rollout window that is closed, or a gate that
// is not open yet. Pure: a function of the decision, the spec, the status and the time. A
// held step keeps being checked, so a canary that turns bad at a gate or outside a window is
// still rolled back at once: gates and windows hold traffic where it is, never a rollback.

import type { Gate, ModelCanarySpec } from '../api/modelcanary.ts';
import type { GateWait, ModelCanaryStatus, OpenedGate, WindowWait } from '../api/status.ts';
import { windowState } from '../api/windows.ts';
import type { Decision } from '../analysis/engine.ts';

export interface Restrained {
  decision: Decision;
  /** The gate the rollout now waits at, if any. */
  gate: GateWait | undefined;
  /** Set while the windows hold the step. */
  window: WindowWait | undefined;
}

/** The gate of this name in the spec, if it is still there. */
export function gateNamed(spec: ModelCanarySpec, name: string): Gate | undefined {
  return spec.analysis.gates?.find((g) => g.name === name);
}

/** The first gate guarding `weight` that has not been opened in this rollout. */
export function closedGate(spec: ModelCanarySpec, opened: readonly OpenedGate[] | undefined, weight: number): Gate | undefined {
  return (spec.analysis.gates ?? []).find((g) => g.before.includes(weight) && !(opened ?? []).some((o) => o.name === g.name && o.weight === weight));
}

/** The wait at `gate` before `weight`, keeping when it began if the rollout already waited there. */
export function gateWait(gate: Gate, weight: number, step: number, canaryVersion: string, status: ModelCanaryStatus, now: Date): GateWait {
  const same = status.gate?.name === gate.name && status.gate.weight === weight && status.gate.canaryVersion === canaryVersion;
  const since = same && status.gate !== undefined ? status.gate.since : now.toISOString();
  return {
    name: gate.name,
    weight,
    step,
    approval: gate.approval,
    canaryVersion,
    since,
    deadline: gate.timeout === undefined ? undefined : new Date(Date.parse(since) + gate.timeout).toISOString(),
    askedAt: same ? status.gate?.askedAt : undefined,
    answer: same ? status.gate?.answer : undefined,
  };
}

/** The window that holds a move now, or undefined when the windows allow it. */
export function windowWait(spec: ModelCanarySpec, status: ModelCanaryStatus, now: Date): WindowWait | undefined {
  const state = windowState(spec.analysis.windows ?? [], now);
  if (state.open) return undefined;
  return { since: status.window?.since ?? now.toISOString(), opensAt: state.opensAt?.toISOString(), reason: state.reason.slice(0, 1024) };
}

/** The decision as gates and windows allow it: a move they hold becomes a hold at the weight in force. */
export function restrain(decision: Decision, spec: ModelCanarySpec, status: ModelCanaryStatus, now: Date): Restrained {
  if (decision.action !== 'advance' && decision.action !== 'promote') return { decision, gate: undefined, window: undefined };
  const from = status.canaryWeight ?? 0;
  const window = windowWait(spec, status, now);
  const gate = window === undefined ? closedGate(spec, status.openedGates, decision.weight) : undefined;
  if (window === undefined && gate === undefined) return { decision, gate: undefined, window: undefined };
  const wait = gate === undefined ? undefined : gateWait(gate, decision.weight, decision.state.stepIndex, status.canaryVersion ?? spec.canary.version, status, now);
  const why =
    window !== undefined
      ? `outside the rollout windows (${window.reason})`
      : gate?.approval === 'manual'
        ? `waiting for approval of gate ${gate.name} (kubectl modelcanary approve)`
        : `waiting for gate ${gate?.name ?? '?'}'s webhook to answer 2xx`;
  // One more passing check tries the move again; a failing one still counts toward rollback.
  const held: Decision = {
    ...decision,
    action: 'hold',
    weight: from,
    state: { ...decision.state, stepIndex: status.currentStep ?? 0, passedChecks: Math.max(spec.analysis.checksPerStep - 1, 0) },
    reason: `all checks passed at ${from} %; the move to ${decision.weight} % is held: ${why}`,
  };
  return { decision: held, gate: wait, window };
}
