import { EXIT, type Io } from './io.ts';
import { runValidate } from './validate.ts';
import { runCrds } from './crds.ts';
import { runSimulate } from './simulate.ts';
import { runBacktest } from './backtest.ts';
import { runRoute } from './route.ts';
import { runSandbox } from './sandbox.ts';
import { runController } from './run.ts';
import { runDemo } from './demo.ts';
import { packageVersion } from './version.ts';

const USAGE = `modelcanary: progressive canary rollouts for ML models on Kubernetes

Usage: modelcanary <command> [options]

Commands:
  validate FILE...    check ModelCanary manifests (multi-document YAML; - reads stdin)
  crds [--write]      print the ModelCanary CRD (--write: update crds/ and the README reference)
  sandbox             a Kubernetes-API-compatible server in memory, for kubectl and tests
  run                 the controller
  simulate            the analysis engine against simulated models, in virtual time
  backtest            the analysis replayed against Prometheus history
  route               the route object the controller would write at a weight
  demo                two rollouts on this machine, no cluster: one promoted, one rolled back

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
      return runValidate(args, io);
    case 'crds':
      return runCrds(args, io);
    case 'simulate':
      return runSimulate(args, io);
    case 'backtest':
      return runBacktest(args, io);
    case 'route':
      return runRoute(args, io);
    case 'sandbox':
      return runSandbox(args, io);
    case 'run':
      return runController(args, io);
    case 'demo':
      return runDemo(args, io);
    default:
      io.stderr.write(`modelcanary: unknown command "${command}"\n\n${USAGE}`);
      return EXIT.unreadable;
  }
}
