// The operator's allowlist of metrics endpoints, as a table: which addresses a ModelCanary may
// point the controller at, what named providers resolve to, and what the flags accept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkAddress, isUnder, parseNamedEndpoint, redact, resolveEndpoint, type EndpointPolicy } from '../src/metrics/endpoints.ts';

const policy: EndpointPolicy = {
  defaultAddress: 'http://prometheus.istio-system:9090',
  named: [{ name: 'team-a', address: 'https://mimir.example/prometheus', secret: { namespace: 'modelcanary-system', name: 'mimir-team-a' } }],
  allowedPrefixes: ['http://thanos.monitoring:9090/tenant'],
};

test('an address is allowed only at or under an allowed base URL, compared as URLs', () => {
  const cases: [string, string, boolean][] = [
    ['http://prometheus.istio-system:9090', 'http://prometheus.istio-system:9090', true],
    ['HTTP://Prometheus.istio-system:9090/', 'http://prometheus.istio-system:9090', true],
    ['http://thanos.monitoring:9090/tenant/a', 'http://thanos.monitoring:9090/tenant', true],
    ['http://thanos.monitoring:9090/tenantx', 'http://thanos.monitoring:9090/tenant', false],
    ['http://thanos.monitoring:9090/other', 'http://thanos.monitoring:9090/tenant', false],
    ['https://prometheus.istio-system:9090', 'http://prometheus.istio-system:9090', false],
    ['http://prometheus.istio-system:9091', 'http://prometheus.istio-system:9090', false],
    ['http://prometheus.istio-system:9090.evil.example', 'http://prometheus.istio-system:9090', false],
    ['http://attacker:8080/steal?', 'http://prometheus.istio-system:9090', false],
    ['http://u:p@prometheus.istio-system:9090', 'http://prometheus.istio-system:9090', false],
    ['http://prometheus.istio-system:9090/api/v1/query?x=1', 'http://prometheus.istio-system:9090', false],
  ];
  for (const [address, prefix, want] of cases) assert.equal(isUnder(address, prefix), want, `${address} under ${prefix}`);
});

test('a ModelCanary picks the default, a named provider, or an allowed address; anything else is refused with what is allowed', () => {
  assert.deepEqual(resolveEndpoint(policy, undefined, 'ml'), { ok: true, endpoint: { address: 'http://prometheus.istio-system:9090', headers: {}, timeoutMs: undefined } });
  const named = resolveEndpoint(policy, { name: 'team-a' }, 'ml');
  assert.ok(named.ok);
  assert.deepEqual(named.endpoint.secret, { namespace: 'modelcanary-system', name: 'mimir-team-a', consentRequired: false }, "the operator's Secret, read without the label");
  const allowed = resolveEndpoint(policy, { prometheus: { address: 'http://thanos.monitoring:9090/tenant/ml', timeout: 5000, secretRef: { name: 'thanos-ml' } } }, 'ml');
  assert.ok(allowed.ok);
  assert.deepEqual(allowed.endpoint.secret, { namespace: 'ml', name: 'thanos-ml', consentRequired: true }, "the author's Secret, only with consent");

  const unknown = resolveEndpoint(policy, { name: 'team-b' }, 'ml');
  assert.deepEqual(unknown, { ok: false, problem: 'spec.metricsProvider.name: this controller has no metrics provider named team-b (it has: team-a)' });
  const stolen = resolveEndpoint(policy, { prometheus: { address: 'http://attacker:8080/steal', timeout: 10_000, secretRef: { name: 'ci-deploy-sa-token' } } }, 'ml');
  assert.ok(!stolen.ok);
  assert.equal(
    stolen.problem,
    'spec.metricsProvider.prometheus.address http://attacker:8080/steal is not allowed by this controller: it queries only addresses under http://prometheus.istio-system:9090, http://thanos.monitoring:9090/tenant, or name one of its providers in spec.metricsProvider.name (team-a); an operator can allow more with modelcanary run --allow-prometheus',
  );
});

test('operator flags: named providers parse, and addresses with credentials, queries or odd schemes are refused with the fix', () => {
  assert.deepEqual(parseNamedEndpoint('team-a=https://mimir.example/prometheus,secret=monitoring/mimir', 'modelcanary-system'), {
    name: 'team-a',
    address: 'https://mimir.example/prometheus',
    secret: { namespace: 'monitoring', name: 'mimir' },
  });
  assert.deepEqual(parseNamedEndpoint('team-a=http://p:9090,secret=mimir', 'modelcanary-system'), { name: 'team-a', address: 'http://p:9090', secret: { namespace: 'modelcanary-system', name: 'mimir' } });
  const withPassword = parseNamedEndpoint('team-a=http://admin:s3cret@p:9090', 'x');
  assert.ok('problem' in withPassword);
  assert.match(withPassword.problem, /holds credentials; put them in a Secret/);
  assert.ok(!withPassword.problem.includes('s3cret'));
  assert.match(checkAddress('HTTP://admin:s3cret@p:9090', '--prometheus') ?? '', /^--prometheus: http:\/\/\[redacted\]@p:9090 holds credentials/);
  assert.match(checkAddress('http://p:9090/?x', '--allow-prometheus') ?? '', /without a query/);
  assert.match(checkAddress('ftp://p', '--prometheus') ?? '', /must be an http/);
  assert.equal(checkAddress('http://p:9090/prometheus', '--prometheus'), undefined);
  assert.equal(redact('https://user:pw@mimir.example/prometheus?token=x#y'), 'https://[redacted]@mimir.example/prometheus');
});
