// Which metrics endpoints a ModelCanary may use. The operator who runs the controller decides;
// the person who writes a ModelCanary only chooses among what the operator allowed: a named
// provider (address and credentials set by the operator) or an address under an allowed
// prefix. Anything else is refused before a single request is sent, so a ModelCanary cannot
// make the controller carry a Secret, or its own network reach, to an address of its choosing.

import type { MetricsProvider as ProviderSpec } from '../api/modelcanary.ts';
import { holdsCredentials, isUnder, redact } from '../api/addresses.ts';

/** A Secret the controller may read for credentials. */
export interface SecretName {
  namespace: string;
  name: string;
}

/** An endpoint the operator configured. */
export interface NamedEndpoint {
  name: string;
  address: string;
  /** Credentials the operator chose for it; read without the consent label. */
  secret?: SecretName | undefined;
}

export interface EndpointPolicy {
  /** Used by ModelCanaries without spec.metricsProvider. */
  defaultAddress: string;
  named: readonly NamedEndpoint[];
  /** Base URLs under which spec.metricsProvider.prometheus.address may point; the default address is always allowed. */
  allowedPrefixes: readonly string[];
}

/** Where one ModelCanary's queries go, and with which credentials. */
export interface Endpoint {
  address: string;
  headers: Readonly<Record<string, string>>;
  timeoutMs: number | undefined;
  /** The Secret to read, and whether it must carry the consent label (a ModelCanary author named it). */
  secret?: { namespace: string; name: string; consentRequired: boolean } | undefined;
}

export type EndpointResult = { ok: true; endpoint: Endpoint } | { ok: false; problem: string };

export function resolveEndpoint(policy: EndpointPolicy, spec: ProviderSpec | undefined, namespace: string): EndpointResult {
  if (spec === undefined) return { ok: true, endpoint: { address: policy.defaultAddress, headers: {}, timeoutMs: undefined } };
  if (spec.name !== undefined) {
    const named = policy.named.find((n) => n.name === spec.name);
    if (named === undefined) {
      const names = policy.named.map((n) => n.name);
      return {
        ok: false,
        problem: `spec.metricsProvider.name: this controller has no metrics provider named ${spec.name} (${names.length === 0 ? 'it has none; leave metricsProvider out to use its default Prometheus' : `it has: ${names.join(', ')}`})`,
      };
    }
    return { ok: true, endpoint: { address: named.address, headers: {}, timeoutMs: undefined, secret: named.secret === undefined ? undefined : { ...named.secret, consentRequired: false } } };
  }
  const prometheus = spec.prometheus;
  if (prometheus === undefined) return { ok: false, problem: 'spec.metricsProvider: set name or prometheus' };
  const allowed = [policy.defaultAddress, ...policy.allowedPrefixes];
  if (!allowed.some((prefix) => isUnder(prometheus.address, prefix))) {
    const named = policy.named.length === 0 ? '' : `, or name one of its providers in spec.metricsProvider.name (${policy.named.map((n) => n.name).join(', ')})`;
    return {
      ok: false,
      problem: `spec.metricsProvider.prometheus.address ${redact(prometheus.address)} is not allowed by this controller: it queries only addresses under ${allowed.map(redact).join(', ')}${named}; an operator can allow more with modelcanary run --allow-prometheus`,
    };
  }
  const secret = prometheus.secretRef === undefined ? undefined : { namespace, name: prometheus.secretRef.name, consentRequired: true };
  return { ok: true, endpoint: { address: prometheus.address, headers: prometheus.headers ?? {}, timeoutMs: prometheus.timeout, secret } };
}

export { holdsCredentials, isUnder, redact };

/**
 * Parses `NAME=URL[,secret=NAMESPACE/NAME]`, the value of --metrics-provider. The address must
 * not hold credentials: they belong in the Secret.
 */
export function parseNamedEndpoint(text: string, defaultNamespace: string): NamedEndpoint | { problem: string } {
  const [head = '', ...options] = text.split(',');
  const equals = head.indexOf('=');
  const name = head.slice(0, equals).trim();
  const address = head.slice(equals + 1).trim();
  if (equals <= 0 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) return { problem: `--metrics-provider ${redactText(text)}: write NAME=URL[,secret=NAMESPACE/NAME], NAME a DNS label such as team-a` };
  const checked = checkAddress(address, `--metrics-provider ${name}`);
  if (checked !== undefined) return { problem: checked };
  let secret: SecretName | undefined;
  for (const option of options) {
    const match = /^secret=(?:([a-z0-9-]+)\/)?([a-z0-9.-]+)$/.exec(option.trim());
    if (match === null) return { problem: `--metrics-provider ${name}: unknown option ${JSON.stringify(option.trim())}; the only option is secret=NAMESPACE/NAME` };
    secret = { namespace: match[1] ?? defaultNamespace, name: match[2] ?? '' };
  }
  return { name, address, secret };
}

/** Why an operator-given address is unusable, or undefined. */
export function checkAddress(address: string, flag: string): string | undefined {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return `${flag}: ${redactText(address)} is not a URL; write it as http://prometheus.istio-system:9090`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${flag}: ${redact(address)} must be an http:// or https:// URL`;
  if (holdsCredentials(address)) {
    return flag.startsWith('--allow-')
      ? `${flag}: ${redact(address)} holds credentials; an allowed address is a base URL without them`
      : `${flag}: ${redact(address)} holds credentials; put them in a Secret and name it with --metrics-provider NAME=URL,secret=NAMESPACE/NAME`;
  }
  if (url.search !== '' || url.hash !== '') return `${flag}: ${redact(address)} must be a base URL without a query (?) or fragment (#)`;
  return undefined;
}

/** Text that may hold a URL with credentials, with any user:password@ blanked. */
function redactText(text: string): string {
  return text.replace(/(:\/\/)[^/@\s]*@/g, '$1[redacted]@');
}
