// What people ask of a rollout (promote, abort, approve, retry) travels as an annotation on the
// ModelCanary: RBAC decides who may patch it, the API server's audit log records who did, and
// the controller acts on each new value once, recording the value it acted on in
// status.handled. A plain `kubectl annotate mcan NAME modelcanary.io/promote=now` works too:
// any value that is not our JSON is a request of its own, made by someone unnamed.

import { z } from 'zod';

export const ACTION_ANNOTATIONS = {
  promote: 'modelcanary.io/promote',
  abort: 'modelcanary.io/abort',
  approve: 'modelcanary.io/approve',
  retry: 'modelcanary.io/retry',
} as const;
export type Action = keyof typeof ACTION_ANNOTATIONS;

/** Who paused or resumed (spec.suspend), as the CLI says; for events only. */
export const SUSPENDED_BY_ANNOTATION = 'modelcanary.io/suspended-by';

export const ActionRequest = z.object({
  id: z.string().min(1).max(128),
  /** The requester as the client saw itself (SelfSubjectReview); the audit log is the authority. */
  by: z.string().max(256).optional(),
  at: z.iso.datetime({ offset: true }).optional(),
  /** promote: straight to 100 %, skipping the remaining steps and their analysis. */
  full: z.boolean().optional(),
  /** approve: the gate meant; without it, whichever gate the rollout waits at. */
  gate: z.string().max(63).optional(),
});
export type ActionRequest = z.output<typeof ActionRequest>;

/** The request an annotation value carries; undefined when there is none. */
export function readRequest(value: string | undefined): ActionRequest | undefined {
  if (value === undefined || value === '') return undefined;
  try {
    const parsed = ActionRequest.safeParse(JSON.parse(value));
    if (parsed.success) return parsed.data;
  } catch {
    // Not JSON: a hand-written request.
  }
  return { id: value.slice(0, 128) };
}

/** The annotation value for a request, as the CLI writes it. */
export function requestValue(request: ActionRequest): string {
  return JSON.stringify(request);
}

/** "by alice" or "by someone" (a hand-written annotation names nobody). */
export function actor(request: ActionRequest | undefined): string {
  // eslint-disable-next-line no-control-regex -- control characters are what is removed
  const who = request?.by?.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return who === undefined || who === '' ? 'someone (see the audit log)' : who;
}
