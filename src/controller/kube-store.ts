// The routers' ObjectStore over the Kubernetes API (client-node): whole objects, replaced with
// their resourceVersion as precondition.

import { ApiException, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { ObjectStore } from '../routing/router.ts';
import { withSignal } from './kube-options.ts';

type Json = Record<string, unknown>;

export class KubeObjectStore implements ObjectStore {
  private readonly api: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async get(apiVersion: string, kind: string, namespace: string, name: string, signal?: AbortSignal): Promise<Json | undefined> {
    const [group = '', version = ''] = apiVersion.split('/');
    try {
      return (await this.api.getNamespacedCustomObject({ group, version, namespace, plural: plural(kind), name }, withSignal(signal))) as Json;
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  async list(apiVersion: string, kind: string, namespace: string, signal?: AbortSignal): Promise<Json[]> {
    const [group = '', version = ''] = apiVersion.split('/');
    try {
      const list = (await this.api.listNamespacedCustomObject({ group, version, namespace, plural: plural(kind) }, withSignal(signal))) as { items?: Json[] };
      return list.items ?? [];
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return [];
      throw error;
    }
  }

  async replace(object: Json, signal?: AbortSignal): Promise<'ok' | 'conflict'> {
    const apiVersion = typeof object.apiVersion === 'string' ? object.apiVersion : '';
    const kind = typeof object.kind === 'string' ? object.kind : '';
    const metadata = (object.metadata ?? {}) as { name?: string; namespace?: string };
    const [group = '', version = ''] = apiVersion.split('/');
    try {
      await this.api.replaceNamespacedCustomObject(
        { group, version, namespace: metadata.namespace ?? 'default', plural: plural(kind), name: metadata.name ?? '', body: object },
        withSignal(signal),
      );
      return 'ok';
    } catch (error) {
      if (error instanceof ApiException && error.code === 409) return 'conflict';
      throw error;
    }
  }
}

/** The resource name of the kinds routers manage: VirtualService → virtualservices, HTTPRoute → httproutes. */
function plural(kind: string): string {
  return `${kind.toLowerCase()}s`;
}
