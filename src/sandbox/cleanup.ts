// The servers that tests start as child processes, from their port to their end: a free port to
// bind, how one ended, and that none outlives this Node process or leaves its temporary folder
// behind. Tests start a real Prometheus (prometheus.ts) and a real etcd and kube-apiserver
// (test/kube/envtest.ts); a test may forget stop(), fail before reaching it, be interrupted, or be
// killed with SIGKILL by a CI timeout. Both share this one registry, its exit and signal hooks and
// its watchdog shell, so that a fix to one (the order of the signal listeners, a reused pid)
// reaches both.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * A loopback port free when chosen. It may be taken before the child binds it, so callers start
 * the child again when it reports `address already in use`.
 */
export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no TCP port from the loopback listener');
  return address.port;
}

/** How a child process ended: its exit code or signal, or the error that kept it from starting. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export function describeExit(exit: Exit): string {
  if (exit.error !== undefined) return exit.error.message;
  return exit.signal === null ? `exit code ${exit.code}` : `signal ${exit.signal}`;
}

/** Settles once child has exited or failed to start, and stays settled. */
export function whenExited(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => {
    child.once('error', (error) => {
      resolve({ code: null, signal: null, error });
    });
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
}

/** Processes to SIGKILL and a folder to remove when this process exits or dies of a signal. */
export interface Leftovers {
  /** Read when the process exits: replace it as processes start, empty it once they are gone. */
  pids: number[];
  dir: string;
}

// Everything started and not yet stopped, so that nothing outlives the test process even when
// a test forgets stop() or fails before reaching it. One per process, as the hooks are.
const live = new Set<Leftovers>();
let exitHooksInstalled = false;

export function killQuietly(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function killAllNow(): void {
  for (const entry of live) {
    for (const pid of entry.pids) killQuietly(pid, 'SIGKILL');
    try {
      rmSync(entry.dir, { recursive: true, force: true });
    } catch {
      // the watchdog retries once this process is gone
    }
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // Only synchronous work is possible here. The watchdogs stay: they remove whatever a dying
  // process was still writing when rmSync ran.
  process.once('exit', killAllNow);
  // A node:test file process has no signal handlers of its own, so SIGINT or SIGTERM (the
  // runner interrupted) would end it without 'exit'. Clean up, then die of the signal as if
  // nobody had listened, unless someone else handles it (the demo does). Prepended, so that it
  // runs before the other listeners and still sees them: a `once` listener that ran first is
  // already gone when the next one is called.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.prependOnceListener(signal, () => {
      killAllNow();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

/** Kills entry.pids and removes entry.dir if this process ends before spareAtExit(entry). */
export function killAtExit(entry: Leftovers): void {
  installExitHooks();
  live.add(entry);
}

/** Leaves entry alone at exit: it was stopped, or is let go on purpose. */
export function spareAtExit(entry: Leftovers): void {
  live.delete(entry);
}

/**
 * A shell, named `name` in ps, that kills pids and removes dir once this Node process is gone.
 * It covers what no 'exit' handler can: this process being killed with SIGKILL, e.g. by a CI
 * timeout.
 */
export function startWatchdog(name: string, pids: number[], dir: string): ChildProcess {
  const script = 'p=$1; d=$2; shift 2; while kill -0 "$p" 2>/dev/null; do sleep 1; done; kill -KILL "$@" 2>/dev/null; rm -rf "$d"';
  const watchdog = spawn('sh', ['-c', script, name, String(process.pid), dir, ...pids.map(String)], { stdio: 'ignore', detached: true });
  watchdog.unref();
  return watchdog;
}

export function killWatchdog(watchdog: ChildProcess | undefined): void {
  // Its own process group, so that its `sleep` goes with it.
  if (watchdog?.pid === undefined || watchdog.exitCode !== null || watchdog.signalCode !== null) return;
  killQuietly(-watchdog.pid, 'SIGKILL');
}
