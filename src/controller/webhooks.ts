// The calls a rollout makes to webhooks (spec.analysis.webhooks) and webhook gates, in our own
// words: one method, a do-nothing twin that refuses every URL (no --allow-webhook), and the
// HTTP caller that checks the operator's allowlist before any request.

import type { ModelCanary, Webhook } from '../api/modelcanary.ts';
import type { ModelCanaryStatus } from '../api/status.ts';
import { callHook, checkHookUrl, hookBody, type HookBody, type HookType } from '../notify/hook.ts';

export interface WebhookCall {
  url: string;
  body: HookBody;
  timeoutMs: number;
  retries: number;
  /** The same for every attempt of one call, so that a receiver can drop a repeat. */
  idempotencyKey: string;
}

export type WebhookAnswer = { ok: true } | { ok: false; problem: string };

export interface WebhookCaller {
  call(call: WebhookCall, signal: AbortSignal): Promise<WebhookAnswer>;
}

/** No webhook is allowed: every call is refused, saying how an operator allows one. */
export const NO_WEBHOOKS: WebhookCaller = {
  call: (call) => Promise.resolve({ ok: false, problem: checkHookUrl(call.url, []) ?? 'no webhook is allowed' }),
};

export class HttpWebhookCaller implements WebhookCaller {
  private readonly allowed: readonly string[];

  constructor(allowed: readonly string[]) {
    this.allowed = allowed;
  }

  async call(call: WebhookCall, signal: AbortSignal): Promise<WebhookAnswer> {
    const refused = checkHookUrl(call.url, this.allowed);
    if (refused !== undefined) return { ok: false, problem: refused };
    const result = await callHook({ url: call.url, body: call.body, timeoutMs: call.timeoutMs, retries: call.retries, signal, idempotencyKey: call.idempotencyKey });
    return result.ok ? { ok: true } : { ok: false, problem: result.problem };
  }
}

/** The call to one webhook (or a webhook gate, `type` gate) about `canary` as `status` says it stands. */
export function webhookCall(canary: ModelCanary, status: ModelCanaryStatus, type: HookType, hook: Pick<Webhook, 'name' | 'url' | 'metadata'> & { timeout?: number; retries?: number }, occasion: string): WebhookCall {
  const { steps } = canary.spec.analysis;
  const body = hookBody({
    type,
    name: hook.name,
    canary: {
      namespace: canary.metadata.namespace ?? 'default',
      name: canary.metadata.name,
      model: canary.spec.model,
      stableVersion: canary.spec.stable.version,
      canaryVersion: canary.spec.canary.version,
      weight: status.canaryWeight ?? 0,
      step: Math.min((status.currentStep ?? 0) + 1, steps.length),
      steps: steps.length,
      phase: status.phase ?? 'Pending',
    },
    metadata: hook.metadata,
  });
  return {
    url: hook.url,
    body,
    timeoutMs: hook.timeout ?? 10_000,
    retries: hook.retries ?? 2,
    idempotencyKey: `${canary.metadata.uid ?? canary.metadata.name}/${type}/${hook.name}/${occasion}`,
  };
}
