// Every command as a person meets it from a shell: --help and `help CMD` work for all of them,
// and what goes wrong (a wrong flag, a missing file, a directory, an address nothing answers
// at, no kubeconfig) is one line in words with the documented exit code: never a stack trace,
// never a bare ENOENT.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from './helpers/manifests.ts';
import { main } from '../src/cli/main.ts';

const root = fileURLToPath(ROOT);
const scratch = mkdtempSync(join(tmpdir(), 'modelcanary-help-'));
/** A home without ~/.kube/config, so that only what a case sets is a kubeconfig. */
const home = join(scratch, 'home');
mkdirSync(home);
const missing = join(scratch, 'missing.yaml');
const emptyKubeconfig = join(scratch, 'empty-kubeconfig');
const unreachableKubeconfig = join(scratch, 'unreachable-kubeconfig');
/** A loopback port that nothing listens on: bound, then closed, so that a connection is refused at once. */
const closedPort = await new Promise<number>((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    server.close(() => {
      resolve(port);
    });
  });
});
const unreachable = `http://127.0.0.1:${closedPort}`;
const config = (server: string): string =>
  `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${server}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: ml-serving}}]\ncurrent-context: x\n`;
writeFileSync(emptyKubeconfig, '');
writeFileSync(unreachableKubeconfig, config(`https://127.0.0.1:${closedPort}`));

after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real binary in a child process, with a controlled environment (KUBECONFIG unset unless given). */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const base: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: home, NO_COLOR: '1', NODE_COMPILE_CACHE: join(scratch, 'compile-cache') };
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [join(root, 'bin/modelcanary.js'), ...args], { cwd: root, env: { ...base, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** One line on stderr, in words: no stack frame, no bare error code. */
function assertOneLine(run: Run, what: string): void {
  assert.doesNotMatch(run.stderr, /^\s+at /m, `${what}: a stack trace\n${run.stderr}`);
  assert.doesNotMatch(run.stderr, /\b(E[A-Z]{3,}|ERR_[A-Z_]+|UND_ERR_[A-Z_]+)\b/, `${what}: a bare error code\n${run.stderr}`);
  assert.equal(run.stderr.trimEnd().split('\n').length, 1, `${what}: not one line\n${run.stderr}`);
}

const COMMANDS = ['validate', 'crds', 'sandbox', 'run', 'simulate', 'backtest', 'route', 'notify', 'status', 'list', 'promote', 'abort', 'retry', 'approve', 'pause', 'resume', 'demo'];

test('the global help lists exactly the commands this table runs, and the exit codes', async () => {
  const run = await cli(['--help']);
  assert.equal(run.code, 0);
  const listed = [...run.stdout.split('Commands:\n')[1]?.split('\n\n')[0]?.matchAll(/^ {2}(\S+)/gm) ?? []].map((m) => m[1]);
  assert.deepEqual(listed, COMMANDS);
  assert.match(run.stdout, /^Exit status, the same for every command:\n {2}0 {3}it worked\n {2}1 {3}it ran and judged something bad.*\n.*\n {2}2 {3}it could not run: bad usage/m);
  const bare = await cli([]);
  assert.equal(bare.code, 2, 'no command is bad usage');
  assert.match(bare.stderr, /^modelcanary: progressive canary rollouts/);
  const help = await cli(['help']);
  assert.equal(help.stdout, run.stdout);
});

/**
 * The same entry point the binary calls, in this process: the help and flag table is about what
 * the commands print, and 50 child processes would cost a minute and a half of the suite. The
 * cases below go through the real binary.
 */
async function inProcess(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    stdin: (async function* () {})(),
    cwd: root,
  };
  const code = await main(args, io, { HOME: home, NO_COLOR: '1' });
  return { code, stdout, stderr };
}

describe('every command', () => {
  for (const command of COMMANDS) {
    test(`${command} --help and help ${command} print its usage, exit 0`, async () => {
      const [flag, topic] = await Promise.all([inProcess([command, '--help']), inProcess(['help', command])]);
      assert.equal(flag.code, 0, flag.stderr);
      assert.match(flag.stdout, new RegExp(`^Usage: modelcanary ${command}\\b`));
      assert.equal(flag.stderr, '');
      assert.equal(topic.code, 0, topic.stderr);
      assert.equal(topic.stdout, flag.stdout);
    });

    test(`${command} with an unknown option: one line naming it, exit 2`, async () => {
      // No kubeconfig here either: a wrong flag is the first thing to hear about.
      const run = await inProcess([command, '--no-such-flag']);
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.stderr, `modelcanary ${command}: unknown option --no-such-flag; see modelcanary ${command} --help\n`);
      assert.equal(run.stdout, '');
    });
  }
});

interface Case {
  name: string;
  args: string[];
  env?: Record<string, string>;
  code: number;
  stderr: RegExp;
}

const HEALTHY = 'examples/scenarios/healthy.yaml';
const CANARY = 'examples/fraud-detector-istio.yaml';
const NO_KUBECONFIG = /no kubeconfig: KUBECONFIG is empty, .*\/home\/\.kube\/config does not exist, and this is not a pod in a cluster; pass --kubeconfig FILE or set KUBECONFIG to a kubeconfig file$/;
const REFUSED = /the API server refused the connection \(https:\/\/127\.0\.0\.1:\d+\): is the cluster up, and is this the right context\?$/;

const CASES: Case[] = [
  // Words and the fix, for every command alike.
  { name: 'an unknown command, with the likely one', args: ['vaildate', 'x.yaml'], code: 2, stderr: /^modelcanary: unknown command "vaildate" \(did you mean validate\?\); see modelcanary --help$/ },
  { name: 'help for an unknown command', args: ['help', 'rollback'], code: 2, stderr: /^modelcanary: unknown command "rollback"; see modelcanary --help$/ },
  { name: 'a misspelt flag, with the likely one', args: ['backtest', '--canary', CANARY, '--prometheous', 'http://x'], code: 2, stderr: /^modelcanary backtest: unknown option --prometheous \(did you mean --prometheus\?\); see modelcanary backtest --help$/ },
  { name: 'a flag without its value', args: ['simulate', '--canary'], code: 2, stderr: /^modelcanary simulate: --canary needs a value; see modelcanary simulate --help$/ },

  // A file that does not exist.
  { name: 'validate, missing file', args: ['validate', missing], code: 2, stderr: /missing\.yaml: cannot read: no such file \(check the path\)$/ },
  { name: 'simulate, missing file', args: ['simulate', '--canary', missing, '--scenario', HEALTHY], code: 2, stderr: /missing\.yaml: cannot read: no such file \(check the path\)$/ },
  { name: 'backtest, missing file', args: ['backtest', '--canary', missing, '--since', '1h', '--prometheus', unreachable], code: 2, stderr: /missing\.yaml: cannot read: no such file \(check the path\)$/ },
  { name: 'backtest, missing token file', args: ['backtest', '--canary', CANARY, '--since', '1h', '--token-file', missing], code: 2, stderr: /^modelcanary backtest: --token-file .*missing\.yaml: cannot read: no such file \(check the path\)$/ },
  { name: 'route, missing file', args: ['route', '--canary', missing, '--route', CANARY, '--weight', '30'], code: 2, stderr: /missing\.yaml: cannot read: no such file \(check the path\)$/ },
  { name: 'notify, missing file', args: ['notify', '--canary', missing, '--dry-run'], code: 2, stderr: /missing\.yaml: cannot read: no such file \(check the path\)$/ },
  { name: 'status, missing kubeconfig', args: ['status', 'x', '--kubeconfig', missing], code: 2, stderr: /^modelcanary status: the kubeconfig .*missing\.yaml does not exist: pass --kubeconfig FILE or set KUBECONFIG to a kubeconfig file$/ },
  { name: 'status, an empty kubeconfig file', args: ['status', 'x'], env: { KUBECONFIG: emptyKubeconfig }, code: 2, stderr: /^modelcanary status: cannot read the kubeconfig .*empty-kubeconfig: the file is empty; pass --kubeconfig FILE/ },
  { name: 'run, missing kubeconfig', args: ['run'], env: { KUBECONFIG: missing }, code: 2, stderr: /^modelcanary run: cannot load the kubeconfig .*missing\.yaml: no such file or directory; pass --kubeconfig FILE or set KUBECONFIG to a kubeconfig file$/ },
  { name: 'demo, missing kubeconfig', args: ['demo', '--kubeconfig', missing], code: 2, stderr: /^modelcanary demo: cannot load the kubeconfig .*missing\.yaml: no such file or directory; pass --kubeconfig FILE naming a kubeconfig, or leave it out/ },

  // A directory where a file is expected (validate walks directories; a file used as one is the mistake there).
  { name: 'validate, a file used as a directory', args: ['validate', 'README.md/x.yaml'], code: 2, stderr: /^README\.md\/x\.yaml: cannot read: a part of the path is a file, not a directory$/ },
  { name: 'simulate, a directory', args: ['simulate', '--canary', 'examples', '--scenario', HEALTHY], code: 2, stderr: /^examples: cannot read: it is a directory; name a file in it$/ },
  { name: 'backtest, a directory', args: ['backtest', '--canary', 'examples/', '--since', '1h'], code: 2, stderr: /^examples\/: cannot read: it is a directory; name a file in it$/ },
  { name: 'route, a directory', args: ['route', '--canary', CANARY, '--route', 'examples', '--weight', '30'], code: 2, stderr: /^examples: cannot read: it is a directory; name a file in it$/ },
  { name: 'notify, a directory', args: ['notify', '--canary', 'examples', '--dry-run'], code: 2, stderr: /^examples: cannot read: it is a directory; name a file in it$/ },
  { name: 'status, a directory as kubeconfig', args: ['status', 'x', '--kubeconfig', 'examples'], code: 2, stderr: /^modelcanary status: cannot read the kubeconfig examples: is a directory, not a file; pass --kubeconfig FILE/ },
  { name: 'run, a directory as kubeconfig', args: ['run', '--kubeconfig', 'examples'], code: 2, stderr: /^modelcanary run: cannot load the kubeconfig examples: is a directory, not a file; pass --kubeconfig FILE/ },
  { name: 'demo, a directory as kubeconfig', args: ['demo', '--kubeconfig', 'examples'], code: 2, stderr: /^modelcanary demo: cannot load the kubeconfig examples: is a directory, not a file; / },
  { name: 'crds --write outside a checkout', args: ['crds', '--write', '--dir', 'examples'], code: 2, stderr: /^modelcanary crds: --write regenerates the files of a modelcanary checkout, and examples is not one \(no package\.json\); .*modelcanary crds > FILE\)$/ },

  // An address nothing answers at: a loopback port that was bound, then closed.
  { name: 'backtest, Prometheus unreachable', args: ['backtest', '--canary', CANARY, '--since', '1h', '--prometheus', unreachable], code: 2, stderr: /^modelcanary backtest: cannot reach Prometheus at http:\/\/127\.0\.0\.1:\d+: the connection was refused \(nothing listens at that address and port\); check --prometheus$/ },
  { name: 'notify, webhook unreachable', args: ['notify', '--canary', CANARY, '--webhook', `${unreachable}/hook`], code: 2, stderr: /^modelcanary notify: not sent: cannot reach .*: the connection was refused/ },
  ...['status', 'promote'].map((command) => ({ name: `${command}, API server unreachable`, args: [command, 'fraud-detector', '--kubeconfig', unreachableKubeconfig], code: 2, stderr: new RegExp(`^modelcanary ${command}: ${REFUSED.source}`) })),
  { name: 'list, API server unreachable', args: ['list'], env: { KUBECONFIG: unreachableKubeconfig }, code: 2, stderr: new RegExp(`^modelcanary list: ${REFUSED.source}`) },

  // KUBECONFIG= (empty) in a home without ~/.kube/config, outside a cluster. The operations
  // (promote, abort, retry, approve, pause, resume) share one way to find the cluster.
  ...['status', 'promote', 'resume'].map((command) => ({ name: `${command}, empty KUBECONFIG`, args: [command, 'fraud-detector'], env: { KUBECONFIG: '' }, code: 2, stderr: new RegExp(`^modelcanary ${command}: ${NO_KUBECONFIG.source}`) })),
  { name: 'list, empty KUBECONFIG', args: ['list'], env: { KUBECONFIG: '' }, code: 2, stderr: new RegExp(`^modelcanary list: ${NO_KUBECONFIG.source}`) },
  { name: 'run, empty KUBECONFIG', args: ['run'], env: { KUBECONFIG: '' }, code: 2, stderr: new RegExp(`^modelcanary run: ${NO_KUBECONFIG.source}`) },
];

describe('what goes wrong is one line in words, exit 2', { concurrency: 3 }, () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const run = await cli(c.args, c.env);
      assert.equal(run.code, c.code, `${c.name}: exit ${run.code}\n${run.stderr}`);
      assertOneLine(run, c.name);
      assert.match(run.stderr.trimEnd(), c.stderr, c.name);
    });
  }
});

test('help wins over other flags, even wrong ones, and -h is --help', async () => {
  const [wrong, short] = await Promise.all([cli(['run', '--no-such-flag', '--help']), cli(['validate', '-h'])]);
  assert.equal(wrong.code, 0, wrong.stderr);
  assert.match(wrong.stdout, /^Usage: modelcanary run\b/);
  assert.equal(short.code, 0, short.stderr);
  assert.match(short.stdout, /^Usage: modelcanary validate\b/);
});
