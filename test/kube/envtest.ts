// A real etcd and kube-apiserver on loopback, for tests and for developers (DESIGN.md §6):
// a generated CA, serving and admin certificates, a static admin token (group system:masters),
// service-account signing keys, RBAC authorization, data in a temporary folder; then our CRD
// and the real Istio, Gateway API and InferencePool CRDs, installed and Established.
//
//   npm run envtest            starts one in the background and prints `export KUBECONFIG=...`
//   npm run envtest -- stop    stops it and removes its files
//   npm run envtest -- status  says whether one is running
//
// Tests call startEnvtest(); the processes it starts die with the test process (exit hooks,
// and a watchdog shell for a SIGKILLed runner). The binaries come from `bash test/kube/build.sh`.
//
// What the real server does that shapes this file:
// - No kube-controller-manager runs: namespaces are never finalized after a delete, no garbage
//   collection, no default ServiceAccount in new namespaces (so the ServiceAccount admission
//   plugin is off, as in controller-runtime's envtest); TokenRequest still works.
// - /readyz answers 200 only after the RBAC bootstrap roles and the other post-start hooks ran.
// - A CRD serves its resources only once its Established condition is True.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { describeExit, freeLoopbackPort, killAtExit, killQuietly, killWatchdog, spareAtExit, startWatchdog, whenExited, type Exit, type Leftovers } from '../../src/sandbox/cleanup.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const BUILD_HINT = 'bash test/kube/build.sh';

const DEFAULT_TIMEOUT_MS = 60_000;
// The data is thrown away, so a graceful shutdown buys nothing: kube-apiserver drains for
// seconds after SIGTERM.
const STOP_GRACE_MS = 1_000;
const POLL_MS = 100;
const REQUEST_TIMEOUT_MS = 10_000;
const LOG_TAIL_CHARS = 6_000;

// ── Where the binaries are ─────────────────────────────────────────────────────────────

/** The version test/kube/go.mod requires of a module. */
function requiredVersion(goMod: string, module: string): string {
  const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const match = new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, 'm').exec(goMod);
  if (match?.[1] === undefined) throw new Error(`test/kube/go.mod does not require ${module}`);
  return match[1];
}

/** The versions build.sh builds, and the cache folder it builds them into (the same rule as build.sh). */
export function kubeBinaries(env: NodeJS.ProcessEnv = process.env): { kubernetes: string; etcd: string; dir: string } {
  const goMod = readFileSync(join(HERE, 'go.mod'), 'utf8');
  const kubernetes = requiredVersion(goMod, 'k8s.io/kubernetes');
  const etcd = requiredVersion(goMod, 'go.etcd.io/etcd/server/v3');
  const cache = env.MODELCANARY_KUBE_CACHE ?? join(env.HOME ?? homedir(), '.cache', 'modelcanary', 'kube');
  return { kubernetes, etcd, dir: join(cache, `${kubernetes}-${etcd}`) };
}

/** Why the envtest cannot start here (binaries not built); undefined when it can. */
export function envtestMissing(binDir: string = kubeBinaries().dir): string | undefined {
  const wanted = ['kube-apiserver', 'etcd'].map((name) => join(binDir, name));
  for (const file of wanted) {
    try {
      accessSync(file, constants.X_OK);
    } catch {
      return `${file} is not built: run \`${BUILD_HINT}\` (needs Go; a cold build takes several minutes)`;
    }
  }
  if (!existsSync(join(binDir, 'crds', 'VERSIONS'))) return `${join(binDir, 'crds')} is incomplete: run \`${BUILD_HINT}\``;
  return undefined;
}

// ── Options and result ─────────────────────────────────────────────────────────────────

export interface EnvtestOptions {
  /** The folder build.sh printed (kube-apiserver, etcd, crds/); default: the one for test/kube/go.mod's versions. */
  binDir?: string;
  /**
   * Leave etcd and kube-apiserver running when this Node process ends (the CLI): only stop()
   * or `npm run envtest -- stop` ends them. Default false: they die with this process.
   */
  detached?: boolean;
  /** Install our CRD and the Istio, Gateway API and InferencePool CRDs; default true. */
  installCrds?: boolean;
  /** Deadline for the whole start, CRDs included; default 60 s. */
  timeoutMs?: number;
}

export interface Envtest {
  /** The temporary folder holding certificates, keys, data, logs and the kubeconfig; removed by stop(). */
  dir: string;
  /** A kubeconfig for the admin (token of group system:masters), context `envtest`. */
  kubeconfigFile: string;
  kubeConfig: KubeConfig;
  /** e.g. https://127.0.0.1:40123 */
  server: string;
  /** Bearer token of the admin user `envtest-admin`, group system:masters. */
  token: string;
  /** The CA that signed the serving and client certificates, as PEM and as a file. */
  caCert: string;
  caFile: string;
  /** A client certificate of `envtest-admin` in group system:masters, signed by the CA. */
  clientCert: { certFile: string; keyFile: string };
  etcdUrl: string;
  pids: { etcd: number; kubeApiserver: number };
  /** The CRDs installed (names), each Established. */
  crds: string[];
  /** Milliseconds from the call to ready, CRDs included. */
  startupMs: number;
  /** Stops both processes and removes dir; safe to call more than once. */
  stop(): Promise<void>;
}

// ── Small helpers ──────────────────────────────────────────────────────────────────────

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, timeout: timeoutMs }, (error, _stdout, stderr) => {
      if (error === null) resolve();
      else reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
    });
  });
}

async function logTail(file: string): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).slice(-LOG_TAIL_CHARS);
}

interface Response {
  status: number;
  body: string;
}

/** One HTTP(S) request with a deadline; rejects on a network error. */
function fetchText(url: string, options: { method?: string; token?: string; ca?: string; body?: unknown; timeoutMs?: number }): Promise<Response> {
  const target = new URL(url);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  if (payload !== undefined) headers['Content-Type'] = 'application/json';
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(target, { method: options.method ?? 'GET', headers, ca: options.ca, timeout: options.timeoutMs ?? REQUEST_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${url}: no answer within ${options.timeoutMs ?? REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// ── Certificates and keys ──────────────────────────────────────────────────────────────

const OPENSSL_CONFIG = `[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[serving]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
`;

interface Pki {
  caFile: string;
  caKeyFile: string;
  servingCert: string;
  servingKey: string;
  clientCert: string;
  clientKey: string;
  saPublicKey: string;
  saPrivateKey: string;
}

/** A CA (openssl: Node cannot sign X.509), serving and admin certificates, and service-account keys (node:crypto). */
async function makePki(dir: string, deadline: number): Promise<Pki> {
  const pki = join(dir, 'pki');
  await mkdir(pki, { recursive: true });
  const config = join(pki, 'openssl.cnf');
  await writeFile(config, OPENSSL_CONFIG);
  const file = (name: string): string => join(pki, name);
  const common = ['-config', config, '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '365'];
  const timeout = Math.max(1_000, deadline - Date.now());

  const saKeys = new Promise<{ publicKey: string; privateKey: string }>((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } }, (error, publicKey, privateKey) => {
      if (error === null) resolve({ publicKey, privateKey });
      else reject(error);
    });
  });
  await run('openssl', ['req', '-x509', ...common, '-extensions', 'ca', '-subj', '/CN=modelcanary-envtest-ca', '-keyout', file('ca.key'), '-out', file('ca.crt')], pki, timeout);
  const signed = (extensions: string, subject: string, name: string): Promise<void> =>
    run(
      'openssl',
      ['req', '-x509', ...common, '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-extensions', extensions, '-subj', subject, '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`)],
      pki,
      timeout,
    );
  await Promise.all([signed('serving', '/CN=kube-apiserver', 'serving'), signed('client', '/O=system:masters/CN=envtest-admin', 'admin')]);
  const { publicKey, privateKey } = await saKeys;
  await writeFile(file('sa.pub'), publicKey);
  await writeFile(file('sa.key'), privateKey, { mode: 0o600 });
  return {
    caFile: file('ca.crt'),
    caKeyFile: file('ca.key'),
    servingCert: file('serving.crt'),
    servingKey: file('serving.key'),
    clientCert: file('admin.crt'),
    clientKey: file('admin.key'),
    saPublicKey: file('sa.pub'),
    saPrivateKey: file('sa.key'),
  };
}

// ── Processes ──────────────────────────────────────────────────────────────────────────

interface Started {
  child: ChildProcess;
  exited: Promise<Exit>;
  logFile: string;
}

async function startProcess(binary: string, args: string[], logFile: string, detached: boolean): Promise<Started> {
  // Logs go to a file rather than a pipe: a pipe would tie the process to this one (the CLI
  // exits while they run) and keep a test process alive after its tests end.
  const log = await open(logFile, 'a');
  const child = spawn(binary, args, { stdio: ['ignore', log.fd, log.fd], detached });
  await log.close();
  child.unref();
  return { child, exited: whenExited(child), logFile };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after a grace period; resolves once every pid is gone. */
async function terminate(pids: number[]): Promise<void> {
  for (const pid of pids) killQuietly(pid, 'SIGTERM');
  const grace = Date.now() + STOP_GRACE_MS;
  while (pids.some(alive) && Date.now() < grace) await sleep(50);
  for (const pid of pids) if (alive(pid)) killQuietly(pid, 'SIGKILL');
  const gone = Date.now() + STOP_GRACE_MS;
  while (pids.some(alive) && Date.now() < gone) await sleep(50);
}

// Tracked in cleanup.ts while started in-process and not yet stopped; the watchdog is replaced
// as each process starts.
interface Live extends Leftovers {
  watchdog: ChildProcess | undefined;
}

class StartError extends Error {
  readonly addressInUse: boolean;
  constructor(message: string, log: string) {
    super(`${message}; the end of its log:\n${log}`);
    this.addressInUse = /address already in use/.test(log);
  }
}

/** Polls `ready` until it is true; throws when one of `procs` exits first, or at the deadline. */
async function waitFor(what: string, procs: Started[], deadline: number, ready: () => Promise<boolean>): Promise<void> {
  // `exited` stays settled, so a dead process wins every race from the moment it is gone.
  const died = Promise.race(procs.map(async (proc) => ({ proc, exit: await proc.exited })));
  for (;;) {
    const outcome = await Promise.race([ready().catch(() => false), died]);
    if (outcome === true) return;
    if (outcome !== false) {
      const name = outcome.proc.logFile.replace(/^.*\//, '').replace(/\.log$/, '');
      throw new StartError(`${name} exited before ${what} was ready (${describeExit(outcome.exit)})`, await logTail(outcome.proc.logFile));
    }
    if (Date.now() > deadline) {
      const logs = await Promise.all(procs.map((proc) => logTail(proc.logFile)));
      throw new StartError(`${what} was not ready in time`, logs.join('\n'));
    }
    await sleep(POLL_MS);
  }
}

// ── CRDs ───────────────────────────────────────────────────────────────────────────────

interface CrdDocument {
  kind?: unknown;
  metadata?: { name?: unknown };
}

/** Our CRD, then every CRD build.sh copied (Istio, Gateway API standard, InferencePool). */
async function crdDocuments(binDir: string): Promise<{ name: string; body: CrdDocument }[]> {
  const crdDir = join(binDir, 'crds');
  const files = [join(REPO, 'crds', 'modelcanary.yaml'), ...(await readdir(crdDir)).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(crdDir, f))];
  const documents: { name: string; body: CrdDocument }[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(await readFile(file, 'utf8'))) {
      const body = doc.toJS() as CrdDocument | null;
      if (body?.kind !== 'CustomResourceDefinition') continue;
      const name = body.metadata?.name;
      if (typeof name !== 'string') throw new Error(`${file}: a CustomResourceDefinition without metadata.name`);
      documents.push({ name, body });
    }
  }
  return documents;
}

interface CrdList {
  items?: { metadata?: { name?: string }; status?: { conditions?: { type?: string; status?: string; message?: string }[] } }[];
}

async function installCrds(server: string, token: string, ca: string, binDir: string, deadline: number): Promise<string[]> {
  const documents = await crdDocuments(binDir);
  const base = `${server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`;
  await Promise.all(
    documents.map(async ({ name, body }) => {
      const response = await fetchText(base, { method: 'POST', token, ca, body });
      if (response.status !== 201 && response.status !== 409) throw new Error(`creating CRD ${name} answered ${response.status}: ${response.body.slice(0, 2_000)}`);
    }),
  );
  const wanted = new Set(documents.map((d) => d.name));
  let pending: string[] = [...wanted];
  for (;;) {
    const response = await fetchText(base, { token, ca });
    if (response.status === 200) {
      const list = JSON.parse(response.body) as CrdList;
      const established = new Set(
        (list.items ?? [])
          .filter((crd) => crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true)
          .map((crd) => crd.metadata?.name),
      );
      pending = [...wanted].filter((name) => !established.has(name));
      if (pending.length === 0) return [...wanted];
    }
    if (Date.now() > deadline) throw new Error(`CRDs not Established in time: ${pending.join(', ')}`);
    await sleep(POLL_MS);
  }
}

// ── Starting ───────────────────────────────────────────────────────────────────────────

function kubeconfigYaml(server: string, caCert: string, token: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'envtest', cluster: { server, 'certificate-authority-data': Buffer.from(caCert).toString('base64') } }],
    users: [{ name: 'envtest-admin', user: { token } }],
    contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: 'envtest-admin', namespace: 'default' } }],
    'current-context': 'envtest',
  });
}

async function launch(binDir: string, dir: string, pki: Pki, token: string, options: Required<Omit<EnvtestOptions, 'binDir'>>, started: number): Promise<Envtest> {
  const deadline = started + options.timeoutMs;
  const [etcdClientPort, etcdPeerPort, securePort] = await Promise.all([freeLoopbackPort(), freeLoopbackPort(), freeLoopbackPort()]);
  const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
  const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
  const server = `https://127.0.0.1:${securePort}`;
  const caCert = await readFile(pki.caFile, 'utf8');

  const etcd = await startProcess(
    join(binDir, 'etcd'),
    [
      '--name=envtest',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=envtest=${peerUrl}`,
      // Throwaway data: durability buys nothing and fsync is most of etcd's latency.
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ],
    join(dir, 'etcd.log'),
    options.detached,
  );
  const processes: Started[] = [etcd];
  // Tracked and watched while starting even when detached, so that an interrupted or killed
  // CLI leaves no orphans; a detached envtest is let go once it is ready.
  const entry: Live = { pids: [], watchdog: undefined, dir };
  killAtExit(entry);
  const track = (): void => {
    entry.pids = processes.flatMap((p) => (p.child.pid === undefined ? [] : [p.child.pid]));
    killWatchdog(entry.watchdog);
    entry.watchdog = startWatchdog('modelcanary-envtest-watchdog', entry.pids, dir);
  };
  track();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await terminate(entry.pids);
      killWatchdog(entry.watchdog);
      spareAtExit(entry);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    await waitFor('etcd', [etcd], deadline, async () => {
      const response = await fetchText(`${etcdUrl}/health`, { timeoutMs: 2_000 });
      return response.status === 200 && response.body.includes('"health":"true"');
    });

    const apiserver = await startProcess(
      join(binDir, 'kube-apiserver'),
      [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${securePort}`,
        `--cert-dir=${join(dir, 'apiserver')}`,
        `--tls-cert-file=${pki.servingCert}`,
        `--tls-private-key-file=${pki.servingKey}`,
        `--client-ca-file=${pki.caFile}`,
        `--token-auth-file=${join(dir, 'pki', 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${pki.saPublicKey}`,
        `--service-account-signing-key-file=${pki.saPrivateKey}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        '--allow-privileged=true',
        // No controller-manager creates each namespace's default ServiceAccount.
        '--disable-admission-plugins=ServiceAccount',
        '--profiling=false',
        '--v=0',
      ],
      join(dir, 'kube-apiserver.log'),
      options.detached,
    );
    processes.push(apiserver);
    track();
    await waitFor('kube-apiserver', processes, deadline, async () => {
      const response = await fetchText(`${server}/readyz`, { token, ca: caCert, timeoutMs: 2_000 });
      return response.status === 200;
    });

    const crds = options.installCrds ? await installCrds(server, token, caCert, binDir, deadline) : [];

    const kubeconfigFile = join(dir, 'kubeconfig');
    await writeFile(kubeconfigFile, kubeconfigYaml(server, caCert, token), { mode: 0o600 });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigFile);
    if (options.detached) {
      killWatchdog(entry.watchdog);
      spareAtExit(entry);
    }
    return {
      dir,
      kubeconfigFile,
      kubeConfig,
      server,
      token,
      caCert,
      caFile: pki.caFile,
      clientCert: { certFile: pki.clientCert, keyFile: pki.clientKey },
      etcdUrl,
      pids: { etcd: etcd.child.pid ?? 0, kubeApiserver: apiserver.child.pid ?? 0 },
      crds,
      startupMs: Date.now() - started,
      stop,
    };
  } catch (error) {
    await terminate(entry.pids);
    killWatchdog(entry.watchdog);
    spareAtExit(entry);
    throw error;
  }
}

/**
 * Starts etcd and kube-apiserver on free loopback ports and resolves once the server is ready
 * and the CRDs are Established. Throws, naming build.sh, when the binaries are not built.
 */
export async function startEnvtest(options: EnvtestOptions = {}): Promise<Envtest> {
  const started = Date.now();
  const binDir = options.binDir ?? kubeBinaries().dir;
  const missing = envtestMissing(binDir);
  if (missing !== undefined) throw new Error(missing);
  const resolved = { detached: options.detached ?? false, installCrds: options.installCrds ?? true, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS };

  const dir = await mkdtemp(join(tmpdir(), 'modelcanary-envtest-'));
  try {
    const pki = await makePki(dir, started + resolved.timeoutMs);
    const token = randomBytes(24).toString('hex');
    await writeFile(join(dir, 'pki', 'tokens.csv'), `${token},envtest-admin,envtest-admin,"system:masters"\n`, { mode: 0o600 });
    // A port is free when chosen but may be taken before the server binds it; try again then.
    for (let attempt = 1; ; attempt++) {
      try {
        return await launch(binDir, dir, pki, token, resolved, started);
      } catch (error) {
        if (!(error instanceof StartError && error.addressInUse && attempt < 3)) throw error;
        await rm(join(dir, 'etcd'), { recursive: true, force: true });
      }
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

// ── The CLI: npm run envtest [-- stop | status] ────────────────────────────────────────

interface State {
  dir: string;
  kubeconfigFile: string;
  server: string;
  pids: { etcd: number; kubeApiserver: number };
  binDir: string;
}

function stateFile(env: NodeJS.ProcessEnv): string {
  return env.MODELCANARY_ENVTEST_STATE ?? join(dirname(kubeBinaries(env).dir), 'envtest-state.json');
}

async function readState(file: string): Promise<State | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

/** Whether pid is still the binary we started (not a reused pid). */
function isOurs(pid: number, binary: string): boolean {
  if (!alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === binary;
  } catch {
    // No /proc: trust the pid.
    return true;
  }
}

function ourPids(state: State): number[] {
  return [
    ...(isOurs(state.pids.kubeApiserver, join(state.binDir, 'kube-apiserver')) ? [state.pids.kubeApiserver] : []),
    ...(isOurs(state.pids.etcd, join(state.binDir, 'etcd')) ? [state.pids.etcd] : []),
  ];
}

async function stopFromState(file: string): Promise<string> {
  const state = await readState(file);
  if (state === undefined) return 'no envtest is running';
  await terminate(ourPids(state));
  await rm(state.dir, { recursive: true, force: true });
  await rm(file, { force: true });
  return `stopped the envtest at ${state.server} and removed ${state.dir}`;
}

async function main(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const command = args[0] ?? 'start';
  const file = stateFile(env);
  switch (command) {
    case 'stop':
      console.error(await stopFromState(file));
      return 0;
    case 'status': {
      const state = await readState(file);
      if (state === undefined || ourPids(state).length < 2) {
        console.error('no envtest is running');
        return 1;
      }
      console.error(`envtest running at ${state.server} (etcd pid ${state.pids.etcd}, kube-apiserver pid ${state.pids.kubeApiserver})`);
      console.log(`export KUBECONFIG=${state.kubeconfigFile}`);
      return 0;
    }
    case 'start': {
      const running = await readState(file);
      if (running !== undefined) {
        if (ourPids(running).length === 2) {
          console.error(`an envtest is already running at ${running.server}; \`npm run envtest -- stop\` ends it`);
          console.log(`export KUBECONFIG=${running.kubeconfigFile}`);
          return 0;
        }
        // Half dead or gone (a reboot, a killed process): clear it before starting anew.
        await stopFromState(file);
      }
      const binDir = kubeBinaries(env).dir;
      const missing = envtestMissing(binDir);
      if (missing !== undefined) {
        console.error(`envtest: ${missing}`);
        return 1;
      }
      const envtest = await startEnvtest({ binDir, detached: true });
      const state: State = { dir: envtest.dir, kubeconfigFile: envtest.kubeconfigFile, server: envtest.server, pids: envtest.pids, binDir };
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, JSON.stringify(state, null, 2) + '\n');
      console.error(
        `envtest: kube-apiserver ${kubeBinaries(env).kubernetes} at ${envtest.server}, ready in ${(envtest.startupMs / 1000).toFixed(1)} s with ${envtest.crds.length} CRDs; logs in ${envtest.dir}; \`npm run envtest -- stop\` ends it`,
      );
      console.log(`export KUBECONFIG=${envtest.kubeconfigFile}`);
      return 0;
    }
    default:
      console.error('usage: npm run envtest [-- start | stop | status]');
      return 2;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2), process.env).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(`envtest: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    },
  );
}
