// Prometheus credentials from the Secret named by spec.metricsProvider.prometheus.secretRef:
// key "token" is a bearer token; keys "username" and "password" are basic auth.

import { ApiException, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Credentials } from '../metrics/prometheus-client.ts';

export type CredentialsResult = { ok: true; credentials: Credentials } | { ok: false; problem: string };

export async function readCredentials(kubeConfig: KubeConfig, namespace: string, secretName: string): Promise<CredentialsResult> {
  let data: Record<string, string>;
  try {
    const secret = await kubeConfig.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name: secretName });
    data = secret.data ?? {};
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) return { ok: false, problem: `Secret ${namespace}/${secretName} (spec.metricsProvider.prometheus.secretRef) does not exist` };
    throw error;
  }
  const text = (key: string): string | undefined => (data[key] === undefined ? undefined : Buffer.from(data[key], 'base64').toString('utf8').trim());
  const token = text('token');
  if (token !== undefined && token !== '') return { ok: true, credentials: { kind: 'bearer', token } };
  const username = text('username');
  const password = text('password');
  if (username !== undefined && password !== undefined) return { ok: true, credentials: { kind: 'basic', username, password } };
  return { ok: false, problem: `Secret ${namespace}/${secretName} has neither a "token" key nor "username" and "password" keys` };
}
