// ModelCanaries and Events through client-node. Writes are replaces carrying the
// resourceVersion the reconcile read, so a 409 tells it that someone wrote first.

import { ApiException, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../api/modelcanary.ts';
import type { ModelCanaryStatus } from '../api/status.ts';
import { withSignal } from './kube-options.ts';
import type { CanaryClient, EventRecorder } from './reconciler.ts';

type Json = Record<string, unknown>;

const RESOURCE = { group: GROUP, version: VERSION, plural: PLURAL };

export class KubeCanaryClient implements CanaryClient {
  private readonly api: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async get(namespace: string, name: string, signal?: AbortSignal): Promise<Json | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({ ...RESOURCE, namespace, name }, withSignal(signal))) as Json;
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  async replaceStatus(object: Json, status: ModelCanaryStatus, signal?: AbortSignal): Promise<Json | 'conflict'> {
    const { namespace, name } = identity(object);
    // PUT on /status: the whole status is replaced (nothing stale survives), and the body's
    // metadata.resourceVersion makes the write conditional on what the pass read.
    return conflictAware(() => this.api.replaceNamespacedCustomObjectStatus({ ...RESOURCE, namespace, name, body: { ...object, status: defined(status) } }, withSignal(signal)));
  }

  async setFinalizers(object: Json, finalizers: string[], signal?: AbortSignal): Promise<Json | 'conflict'> {
    const { namespace, name } = identity(object);
    const metadata = { ...((object.metadata ?? {}) as Json), finalizers };
    return conflictAware(() => this.api.replaceNamespacedCustomObject({ ...RESOURCE, namespace, name, body: { ...object, metadata } }, withSignal(signal)));
  }
}

function identity(object: Json): { namespace: string; name: string } {
  const metadata = (object.metadata ?? {}) as { name?: string; namespace?: string };
  return { namespace: metadata.namespace ?? 'default', name: metadata.name ?? '' };
}

async function conflictAware(write: () => Promise<unknown>): Promise<Json | 'conflict'> {
  try {
    return (await write()) as Json;
  } catch (error) {
    if (error instanceof ApiException && error.code === 409) return 'conflict';
    throw error;
  }
}

/** JSON has no undefined: fields left undefined are left out. */
function defined(status: ModelCanaryStatus): Json {
  return JSON.parse(JSON.stringify(status)) as Json;
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
