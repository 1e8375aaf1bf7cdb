import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startSandbox } from '../sandbox/sandbox.ts';
import { parseCommand } from './args.ts';
import { describeError, EXIT, type Io } from './io.ts';

const USAGE = `Usage: modelcanary sandbox [--port N] [--kubeconfig FILE] [--namespace NS]...

Runs an in-memory Kubernetes API server on 127.0.0.1 with the ModelCanary, Istio
(VirtualService, DestinationRule) and Gateway API (HTTPRoute) CRDs installed, writes a
kubeconfig for it, and serves until interrupted (Ctrl-C). kubectl and the controller talk
to it as to a cluster; everything is lost when it stops.

Options:
  --port N            port on 127.0.0.1 (default: a free one)
  --kubeconfig FILE   where to write the kubeconfig (default: a temporary file, removed at exit)
  --namespace NS      a namespace to create at start; repeatable (default: ml-serving)
  -h, --help          show this help
`;

/**
 * `modelcanary sandbox`. Runs until SIGINT or SIGTERM, or until `stop` aborts (tests run the
 * command in-process with their own signal).
 */
export async function runSandbox(args: string[], io: Io, stop?: AbortSignal): Promise<number> {
  const parsed = parseCommand('sandbox', args, { port: { type: 'string' }, kubeconfig: { type: 'string' }, namespace: { type: 'string', multiple: true } }, USAGE, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (parsed.positionals.length > 0) {
    io.stderr.write(`modelcanary sandbox: takes no arguments, not ${parsed.positionals.join(' ')}; see modelcanary sandbox --help\n`);
    return EXIT.unreadable;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    io.stderr.write(`modelcanary sandbox: --port must be a whole number from 0 to 65535, not ${values.port ?? ''}\n`);
    return EXIT.unreadable;
  }
  const namespaces = values.namespace ?? ['ml-serving'];

  let sandbox;
  try {
    sandbox = await startSandbox({ port, namespaces });
  } catch (error) {
    io.stderr.write(`modelcanary sandbox: cannot listen on 127.0.0.1:${port}: ${describeError(error)}\n`);
    return EXIT.unreadable;
  }

  const temporary = values.kubeconfig === undefined ? await mkdtemp(join(tmpdir(), 'modelcanary-sandbox-')) : undefined;
  const kubeconfig = temporary === undefined ? resolve(io.cwd, values.kubeconfig ?? '') : join(temporary, 'kubeconfig');
  try {
    await writeFile(kubeconfig, sandbox.kubeconfig({ namespace: namespaces[0] ?? 'default' }), { mode: 0o600 });
  } catch (error) {
    io.stderr.write(`modelcanary sandbox: cannot write the kubeconfig ${kubeconfig}: ${describeError(error)}\n`);
    await sandbox.stop();
    return EXIT.unreadable;
  }

  io.stdout.write(
    [
      `Kubernetes API sandbox at ${sandbox.url} (in memory; ModelCanary, Istio and Gateway API CRDs installed)`,
      `namespaces: ${namespaces.join(', ')}`,
      '',
      `export KUBECONFIG=${kubeconfig}`,
      'kubectl apply -f examples/fraud-detector-istio.yaml && kubectl get modelcanaries -n ml-serving',
      '',
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );

  await stopped(stop);
  await sandbox.stop();
  if (temporary !== undefined) await rm(temporary, { recursive: true, force: true });
  io.stdout.write('sandbox stopped\n');
  return EXIT.ok;
}

function stopped(stop: AbortSignal | undefined): Promise<void> {
  return new Promise((resolveStop) => {
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
    const done = (): void => {
      for (const signal of signals) process.off(signal, done);
      stop?.removeEventListener('abort', done);
      resolveStop();
    };
    for (const signal of signals) process.once(signal, done);
    if (stop?.aborted === true) done();
    else stop?.addEventListener('abort', done);
  });
}
