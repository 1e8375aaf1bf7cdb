// `modelcanary demo --keep` run headless, as the e2e tests use it: the real binary with stdout
// piped (so it prints plain lines), a kubectl watch on the VirtualServices started as soon as
// the demo prints its kubeconfig, and everything the demo printed, for the assertions.
// spawnDemo and watchRoutes are the parts, for a test that drives the demo differently.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from './manifests.ts';

export interface DemoRun {
  /** Everything printed so far. */
  output(): string;
  /** The address printed after `label`, e.g. "controller metrics". */
  printed(label: string): string;
  kubeconfig: string;
  /** `name=stable canary` lines from `kubectl get virtualservices -w`, in order. */
  routeLines(): string[];
  kubectl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Ctrl-C, then the exit code. */
  interrupt(): Promise<number | null>;
}

const ROOT_DIR = fileURLToPath(ROOT);

/** `modelcanary demo` running in a child process, its stdout and stderr together. */
export interface DemoProcess {
  output(): string;
  /** The exit code once it has ended. */
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
  /** Resolves with the first match of `pattern` in the output; rejects if the demo exits first or the time runs out. */
  waitFor(pattern: RegExp, what: string, timeoutMs: number): Promise<RegExpExecArray>;
}

export function spawnDemo(args: string[], env: NodeJS.ProcessEnv = process.env): DemoProcess {
  const child = spawn(process.execPath, [join(ROOT_DIR, 'bin/modelcanary.js'), 'demo', ...args], { cwd: ROOT_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code); }));
  return {
    output: () => output,
    exited,
    kill: (signal) => {
      child.kill(signal);
    },
    waitFor: (pattern, what, timeoutMs) => until(() => pattern.exec(output) ?? undefined, () => output, exited, timeoutMs, what),
  };
}

/** Starts the demo and resolves once it has printed its summary (or exited, or timed out). */
export async function runDemoHeadless(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 170_000): Promise<DemoRun> {
  const demo = spawnDemo(['--keep', ...args], env);
  const output = (): string => demo.output();
  const exited = demo.exited;

  const kubeconfig = (await demo.waitFor(/--kubeconfig (\S+)/, 'the kubeconfig line', 60_000))[1] ?? '';
  const watch = watchRoutes(kubeconfig, 'ml-serving');
  await demo.waitFor(/as expected\.$/m, 'the summary', timeoutMs);

  return {
    output,
    printed: (label) => {
      const found = new RegExp(`^ +${label} +(\\S+)`, 'm').exec(output())?.[1];
      if (found === undefined) throw new Error(`the demo did not print "${label}":\n${output()}`);
      return found;
    },
    kubeconfig,
    routeLines: () => watch.lines(),
    kubectl: (kubectlArgs) => run('kubectl', ['--kubeconfig', kubeconfig, ...kubectlArgs]),
    interrupt: async () => {
      watch.stop();
      demo.kill('SIGINT');
      return exited;
    },
  };
}

/** `kubectl get virtualservices -w` in a namespace, as `name=stable canary` lines (see canaryWeights). */
export function watchRoutes(kubeconfig: string, namespace: string): { lines(): string[]; stop(): void } {
  const lines: string[] = [];
  const watch = spawn('kubectl', ['--kubeconfig', kubeconfig, '-n', namespace, 'get', 'virtualservices', '-w', '-o', 'jsonpath={.metadata.name}={.spec.http[0].route[*].weight}{"\\n"}'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let partial = '';
  watch.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const received = (partial + chunk).split('\n');
    partial = received.pop() ?? '';
    lines.push(...received.filter((l) => l !== ''));
  });
  return {
    lines: () => [...lines],
    stop: () => {
      watch.kill('SIGTERM');
    },
  };
}

async function until<T>(found: () => T | undefined, output: () => string, exited: Promise<number | null>, timeoutMs: number, what: string): Promise<T> {
  const state = { code: 'running' as number | null | 'running' };
  void exited.then((c) => {
    state.code = c;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = found();
    if (value !== undefined) return value;
    if (state.code !== 'running') throw new Error(`the demo exited (${String(state.code)}) before ${what}:\n${output()}`);
    if (Date.now() > deadline) throw new Error(`no ${what} from the demo within ${timeoutMs / 1000} s:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('close', (code) => {
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

/** The canary weights of one VirtualService as kubectl saw them, consecutive repeats and the initial all-stable state dropped. */
export function canaryWeights(lines: readonly string[], name: string): number[] {
  const weights: number[] = [];
  for (const line of lines) {
    if (!line.startsWith(`${name}=`)) continue;
    const [, canary] = line.slice(name.length + 1).split(' ');
    const weight = canary === undefined ? 0 : Number(canary);
    if (weights.length === 0 && weight === 0) continue;
    if (weights.at(-1) !== weight) weights.push(weight);
  }
  return weights;
}

/** A sample's value from Prometheus text, matching every `label="value"` given; 0 when absent. */
export function sampleValue(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.split(' ').at(-1));
  }
  return total;
}
