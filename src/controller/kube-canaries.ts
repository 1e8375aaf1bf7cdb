// ModelCanaries and Events through client-node.

import { ApiException, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../api/modelcanary.ts';
import type { ModelCanaryStatus } from '../api/status.ts';
import type { CanaryClient, EventRecorder } from './reconciler.ts';

type Json = Record<string, unknown>;

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const RESOURCE = { group: GROUP, version: VERSION, plural: PLURAL };

export class KubeCanaryClient implements CanaryClient {
  private readonly api: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async get(namespace: string, name: string): Promise<Json | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({ ...RESOURCE, namespace, name })) as Json;
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  async patchStatus(namespace: string, name: string, status: ModelCanaryStatus): Promise<void> {
    // A merge patch replaces lists whole and drops nulls: the status written is the status kept.
    await this.api.patchNamespacedCustomObjectStatus({ ...RESOURCE, namespace, name, body: { status: withNulls(status) } }, MERGE_PATCH);
  }

  async setFinalizers(namespace: string, name: string, finalizers: string[]): Promise<void> {
    await this.api.patchNamespacedCustomObject({ ...RESOURCE, namespace, name, body: { metadata: { finalizers: finalizers.length === 0 ? null : finalizers } } }, MERGE_PATCH);
  }
}

/** Fields left undefined must be removed by the merge patch, not kept from before. */
function withNulls(status: ModelCanaryStatus): Json {
  return Object.fromEntries(Object.entries(status as Record<string, unknown>).map(([k, v]) => [k, v ?? null]));
}

export class KubeEventRecorder implements EventRecorder {
  private readonly api: CoreV1Api;
  private readonly component: string;

  constructor(kubeConfig: KubeConfig, component = 'modelcanary') {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
    this.component = component;
  }

  async record(canary: Json, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const metadata = (canary.metadata ?? {}) as { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
    const namespace = metadata.namespace ?? 'default';
    const now = new Date();
    await this.api.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${metadata.name ?? 'modelcanary'}.`, namespace },
        involvedObject: { apiVersion: `${GROUP}/${VERSION}`, kind: 'ModelCanary', name: metadata.name, namespace, uid: metadata.uid, resourceVersion: metadata.resourceVersion },
        type,
        reason,
        message: message.slice(0, 1024),
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        source: { component: this.component },
        reportingComponent: this.component,
      },
    });
  }
}
