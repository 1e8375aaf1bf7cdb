import { EXIT, type Io } from './io.ts';
import { packageVersion } from './version.ts';

// Each command's module is loaded only when it runs: `modelcanary run` loads no sandbox, mesh
// or demo code, and the image leaves those out (.dockerignore).

const USAGE = `modelcanary: progressive canary rollouts for ML models on Kubernetes

Usage: modelcanary <command> [options]
       kubectl modelcanary <command> [options]   (as a kubectl plugin: kubectl-modelcanary on PATH)

Commands:
  validate FILE...    check ModelCanary manifests (multi-document YAML; - reads stdin)
  crds [--write]      print the ModelCanary CRD (--write: update crds/ and the README reference)
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
  -h, --help          show this help
  -v, --version       show the version
`;


export async function main(argv: string[], io: Io): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      io.stdout.write(USAGE);
      return command === undefined ? EXIT.unreadable : EXIT.ok;
    case '-v':
    case '--version':
      io.stdout.write(`${packageVersion()}\n`);
      return EXIT.ok;
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
    case 'run':
      return (await import('./run.ts')).runController(args, io);
    case 'status':
      return (await import('./status.ts')).runStatus(args, io, process.env);
    case 'list':
      return (await import('./status.ts')).runList(args, io, process.env);
    case 'promote':
    case 'abort':
    case 'retry':
    case 'approve':
    case 'pause':
    case 'resume':
      return (await import('./operate.ts')).runOperate(command, args, io, process.env);
    case 'sandbox':
    case 'demo': {
      const module = await loadDevelopmentCommand(command, io);
      if (module === undefined) return EXIT.unreadable;
      return command === 'demo' ? (module as typeof import('./demo.ts')).runDemo(args, io) : (module as typeof import('./sandbox.ts')).runSandbox(args, io);
    }
    default:
      io.stderr.write(`modelcanary: unknown command "${command}"\n\n${USAGE}`);
      return EXIT.unreadable;
  }
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
