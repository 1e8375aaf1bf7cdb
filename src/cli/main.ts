import { closest } from '../api/suggest.ts';
import { asksForHelp } from './args.ts';
import { describeError, EXIT, type Io } from './io.ts';
import { kubeconfigFor } from './kube.ts';
import { packageVersion } from './version.ts';

// Each command's module is loaded only when it runs: `modelcanary run` loads no sandbox, mesh
// or demo code, and the image leaves those out (.dockerignore).

const USAGE = `modelcanary: progressive canary rollouts for ML models on Kubernetes

Usage: modelcanary <command> [options]
       kubectl modelcanary <command> [options]   (as a kubectl plugin: kubectl-modelcanary on PATH)

Commands:
  validate PATH...    check ModelCanary manifests: YAML files, directories of them, - for stdin
  crds [--write]      print the ModelCanary CRD (--write: regenerate a checkout's crds/ and README)
  sandbox             a Kubernetes-API-compatible server in memory, for kubectl and tests
  run                 the controller
  simulate            the analysis engine against simulated models, in virtual time
  backtest            the analysis replayed against Prometheus history
  route               the route object the controller would write at a weight
  notify              send a sample Slack (or webhook) notification built from a manifest
  status NAME         a rollout as a person wants to see it (--watch to follow it)
  list                every ModelCanary of a namespace (-A: all)
  promote NAME        the next step now (--full: straight to 100 %)
  abort NAME          all traffic back to stable now
  retry NAME          start a rolled-back rollout again
  approve NAME        open the manual gate the rollout waits at
  pause NAME          hold the rollout where it is
  resume NAME         let a paused rollout go on
  demo                rollouts on this machine, no cluster: one promoted, two rolled back

Options:
  -h, --help          show this help; modelcanary COMMAND --help (or modelcanary help COMMAND)
                      shows a command's own
  -v, --version       show the version

Exit status, the same for every command:
  0   it worked
  1   it ran and judged something bad: an invalid ModelCanary, a rollback (status, backtest),
      a request the rollout refused, a webhook that refused the message
  2   it could not run: bad usage, a file that is missing or not YAML, an address that cannot
      be reached, no kubeconfig
`;

const COMMANDS = ['validate', 'crds', 'sandbox', 'run', 'simulate', 'backtest', 'route', 'notify', 'status', 'list', 'promote', 'abort', 'retry', 'approve', 'pause', 'resume', 'demo'] as const;
type Command = (typeof COMMANDS)[number];

function isCommand(name: string): name is Command {
  return (COMMANDS as readonly string[]).includes(name);
}

/**
 * Runs one command. Help, unknown commands and anything a command throws are handled here, for
 * every command alike: `help CMD` and `CMD --help` print the command's usage, and an error that
 * escapes a command is one line in words with exit 2, never a stack trace.
 */
export async function main(argv: string[], io: Io, env: Record<string, string | undefined> = process.env): Promise<number> {
  quietOnClosedPipe(io.stdout);
  const [command, ...args] = argv;
  switch (command) {
    case undefined:
      io.stderr.write(USAGE);
      return EXIT.unreadable;
    case '-h':
    case '--help':
      io.stdout.write(USAGE);
      return EXIT.ok;
    case 'help': {
      const [topic] = args;
      if (topic === undefined || topic === 'help') {
        io.stdout.write(USAGE);
        return EXIT.ok;
      }
      if (!isCommand(topic)) return unknownCommand(topic, io);
      return guarded(topic, ['--help'], io, env);
    }
    case '-v':
    case '--version':
      io.stdout.write(`${packageVersion()}\n`);
      return EXIT.ok;
    default:
      if (!isCommand(command)) return unknownCommand(command, io);
      // Help wins over every other flag, even a wrong one: a person asking for it is stuck.
      return guarded(command, asksForHelp(args) ? ['--help'] : args, io, env);
  }
}

/**
 * A reader that stops early (`modelcanary crds | head`) closes the pipe; the rest of the
 * output is dropped and the command ends as it would have, without Node's unhandled 'error'.
 */
function quietOnClosedPipe(stream: Io['stdout']): void {
  const emitter = stream as { on?: (event: 'error', listener: (error: unknown) => void) => unknown };
  if (typeof emitter.on !== 'function') return;
  emitter.on('error', () => undefined);
}

function unknownCommand(command: string, io: Io): number {
  const guess = command.startsWith('-') ? undefined : closest(command, COMMANDS);
  const what = command.startsWith('-') ? `unknown option ${command}` : `unknown command "${command}"`;
  io.stderr.write(`modelcanary: ${what}${guess === undefined ? '' : ` (did you mean ${guess}?)`}; see modelcanary --help\n`);
  return EXIT.unreadable;
}

async function guarded(command: Command, args: string[], io: Io, env: Record<string, string | undefined>): Promise<number> {
  try {
    return await dispatch(command, args, io, env);
  } catch (error) {
    io.stderr.write(`modelcanary ${command}: ${describeError(error)}\n`);
    return EXIT.unreadable;
  }
}

async function dispatch(command: Command, args: string[], io: Io, env: Record<string, string | undefined>): Promise<number> {
  switch (command) {
    case 'validate':
      return (await import('./validate.ts')).runValidate(args, io);
    case 'crds':
      return (await import('./crds.ts')).runCrds(args, io);
    case 'simulate':
      return (await import('./simulate.ts')).runSimulate(args, io);
    case 'backtest':
      return (await import('./backtest.ts')).runBacktest(args, io);
    case 'route':
      return (await import('./route.ts')).runRoute(args, io);
    case 'notify':
      return (await import('./notify.ts')).runNotify(args, io);
    case 'run': {
      // run checks its kubeconfig itself, after its flags' values (kubeconfigFor in kube.ts).
      const { runController } = await import('./run.ts');
      return runController(args, io, undefined, env);
    }
    case 'status':
      return (await import('./status.ts')).runStatus(args, io, env);
    case 'list':
      return (await import('./status.ts')).runList(args, io, env);
    case 'promote':
    case 'abort':
    case 'retry':
    case 'approve':
    case 'pause':
    case 'resume':
      return (await import('./operate.ts')).runOperate(command, args, io, env);
    case 'sandbox':
    case 'demo': {
      const module = await loadDevelopmentCommand(command, io);
      if (module === undefined) return EXIT.unreadable;
      if (command === 'sandbox') return (module as typeof import('./sandbox.ts')).runSandbox(args, io);
      const { runDemo } = module as typeof import('./demo.ts');
      if ((await flagsKnown(args, (quiet) => runDemo(['--help'], quiet))) && typeof kubeconfigFor(command, flagValue(args, 'kubeconfig'), io, env) === 'number') return EXIT.unreadable;
      return runDemo(args, io);
    }
  }
}

/**
 * True when every flag in `args` is one the command's usage names, and help is not asked for.
 * A checked kubeconfig is worth a word only then: a misspelt flag, or a request for help, is
 * the command's to answer first.
 */
async function flagsKnown(args: string[], printUsage: (io: Io) => Promise<number>): Promise<boolean> {
  if (asksForHelp(args)) return false;
  let usage = '';
  await printUsage({ stdout: { write: (text: string) => (usage += text) }, stderr: { write: () => true }, stdin: (async function* () {})(), cwd: '.' });
  for (const arg of args) {
    if (arg === '--') break;
    if (!arg.startsWith('-')) continue;
    const flag = arg.split('=')[0] ?? arg;
    if (!new RegExp(`(^|[\\s,\\[(])${flag}($|[\\s,\\])=])`, 'm').test(usage)) return false;
  }
  return true;
}

/** The value of --NAME VALUE or --NAME=VALUE among the flags (before any `--`). */
function flagValue(args: string[], name: string): string | undefined {
  for (const [i, arg] of args.entries()) {
    if (arg === '--') return undefined;
    if (arg === `--${name}`) return args[i + 1];
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
  }
  return undefined;
}

/** The demo and the sandbox are for laptops and tests; the controller image does not ship them. */
async function loadDevelopmentCommand(command: 'demo' | 'sandbox', io: Io): Promise<unknown> {
  try {
    return command === 'demo' ? await import('./demo.ts') : await import('./sandbox.ts');
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    io.stderr.write(`modelcanary ${command}: not in this installation (the controller image leaves the demo and the sandbox out); run it from a clone: npm ci && npm run demo\n`);
    return undefined;
  }
}
