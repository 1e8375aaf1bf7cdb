// Prometheus credentials from a Secret: key "token" is a bearer token; keys "username" and
// "password" are basic auth. A Secret named by a ModelCanary is read only when it consents, by
// the label modelcanary.io/credentials=true: the author of a ModelCanary may not point the
// controller at any Secret of their namespace (a deploy token, say) and have it sent out.

import { ApiException, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Credentials } from '../metrics/prometheus-client.ts';

export const CONSENT_LABEL = 'modelcanary.io/credentials';

export type CredentialsResult = { ok: true; credentials: Credentials } | { ok: false; problem: string };

export async function readCredentials(kubeConfig: KubeConfig, namespace: string, secretName: string, consentRequired = true): Promise<CredentialsResult> {
  const where = `Secret ${namespace}/${secretName}`;
  let secret;
  try {
    secret = await kubeConfig.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name: secretName });
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) return { ok: false, problem: `${where} (spec.metricsProvider.prometheus.secretRef) does not exist` };
    if (error instanceof ApiException && error.code === 403) {
      return { ok: false, problem: `${where}: the controller may not read Secrets in ${namespace}; an operator grants it per namespace (docs/security.md, "Credentials in tenant namespaces")` };
    }
    throw error;
  }
  if (consentRequired && secret.metadata?.labels?.[CONSENT_LABEL] !== 'true') {
    return { ok: false, problem: `${where} is not labelled ${CONSENT_LABEL}=true: the controller reads only Secrets meant for it (kubectl label secret ${secretName} -n ${namespace} ${CONSENT_LABEL}=true)` };
  }
  const data = secret.data ?? {};
  const text = (key: string): string | undefined => (data[key] === undefined ? undefined : Buffer.from(data[key], 'base64').toString('utf8').trim());
  const token = text('token');
  if (token !== undefined && token !== '') return { ok: true, credentials: { kind: 'bearer', token } };
  const username = text('username');
  const password = text('password');
  if (username !== undefined && password !== undefined) return { ok: true, credentials: { kind: 'basic', username, password } };
  return { ok: false, problem: `${where} has neither a "token" key nor "username" and "password" keys` };
}

/**
 * A webhook URL from key "url" of a Secret. A Secret named by a ModelCanary (`consentRequired`)
 * is read only with the consent label, as for Prometheus credentials.
 */
export async function readWebhookUrl(kubeConfig: KubeConfig, namespace: string, secretName: string, consentRequired: boolean): Promise<{ ok: true; url: string } | { ok: false; problem: string }> {
  const where = `Secret ${namespace}/${secretName}`;
  let secret;
  try {
    secret = await kubeConfig.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name: secretName });
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) return { ok: false, problem: `${where} does not exist` };
    if (error instanceof ApiException && error.code === 403) {
      return { ok: false, problem: `${where}: the controller may not read Secrets in ${namespace}; an operator grants it per namespace (docs/security.md, "Credentials in tenant namespaces")` };
    }
    return { ok: false, problem: `${where} could not be read: ${error instanceof ApiException ? `the API server answered ${error.code}` : (error as Error).message}` };
  }
  if (consentRequired && secret.metadata?.labels?.[CONSENT_LABEL] !== 'true') {
    return { ok: false, problem: `${where} is not labelled ${CONSENT_LABEL}=true: the controller reads only Secrets meant for it (kubectl label secret ${secretName} -n ${namespace} ${CONSENT_LABEL}=true)` };
  }
  const raw = secret.data?.url;
  const url = raw === undefined ? '' : Buffer.from(raw, 'base64').toString('utf8').trim();
  if (url === '') return { ok: false, problem: `${where} has no key "url" (kubectl create secret generic ${secretName} -n ${namespace} --from-literal=url=https://hooks.slack.com/services/...)` };
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return { ok: false, problem: `${where}: key "url" must be an http:// or https:// URL` };
  } catch {
    return { ok: false, problem: `${where}: key "url" is not a URL` };
  }
  return { ok: true, url };
}
