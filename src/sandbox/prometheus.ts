// The real Prometheus server for the demo and for tests (DESIGN.md §6): backfill exact fixtures
// with promtool, start a server on a free loopback port scraping local targets, and stop it
// again. Written against the Debian package, Prometheus 2.42.
//
// What 2.42 does that shapes this file:
// - `promtool tsdb create-blocks-from openmetrics` needs the text to end with `# EOF` and every
//   sample to carry a timestamp in seconds (a millisecond timestamp is taken as seconds, far in
//   the future, without complaint). Samples of one series must be in ascending time order: an
//   out-of-order or duplicate sample is dropped silently, so backfill() counts what promtool
//   stored and fails when it stored fewer samples than the text holds.
// - Blocks are cut at 2 h boundaries and Prometheus loads only the blocks present when it
//   starts, so backfill before start. 2.42 loads overlapping blocks (e.g. two backfills of
//   the same hours) with only a warning; `--storage.tsdb.allow-overlapping-blocks` is a
//   hidden no-op there, so no flag is needed.
//   Time retention is measured back from the newest block, not from the wall clock; a long
//   one keeps old fixtures even after the server has cut a block of its own.
// - A fixture must end before now when the server also scrapes: the head drops samples older
//   than the newest loaded block, so after a fixture reaching into the future the targets
//   report up while their samples are silently discarded.
// - The first scrape comes about 5 s after start, whatever the scrape interval: discovery
//   sends its targets on a fixed 5 s tick and the scrape manager reloads on a tick of
//   `--scrape.discovery-reload-interval`, which 2.42 raises to at least 5 s. There is no way
//   to shorten it, so tests that need scraped data poll with a bounded wait of ~30 s.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { stringify } from 'yaml';
import { describeExit, freeLoopbackPort, killAtExit, killWatchdog, spareAtExit, startWatchdog, whenExited, type Exit, type Leftovers } from './cleanup.ts';

function onPath(command: string, searchPath: string): boolean {
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Why Prometheus cannot run here, given $PATH; undefined when it can. */
export function prometheusMissing(searchPath: string | undefined): string | undefined {
  const path = searchPath ?? '';
  return onPath('prometheus', path) && onPath('promtool', path) ? undefined : 'prometheus is not installed: apt-get install -y prometheus (.ci/run does this)';
}

export interface PrometheusOptions {
  /** OpenMetrics text (ending `# EOF`, timestamps in seconds) backfilled before the server starts. */
  openMetrics?: string;
  /** host:port targets scraped at /metrics by the job `mesh`. */
  scrapeTargets?: string[];
  /** More scrape jobs: job name → host:port targets scraped at /metrics. */
  scrapeJobs?: Record<string, string[]>;
  /** Global scrape and evaluation interval; default '1s'. */
  scrapeInterval?: string;
  /** Rule files (recording and alerting rules) Prometheus evaluates. */
  ruleFiles?: string[];
}

export interface RunningPrometheus {
  /** e.g. http://127.0.0.1:40123, without a trailing slash. */
  url: string;
  /** The TSDB directory. */
  dataDir: string;
  /** Stops the server and removes its files; safe to call more than once. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 3_000;
const OUTPUT_KEPT_CHARS = 16_000;

function run(command: string, args: string[]): Promise<{ exit: Exit; output: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return new Promise((resolve) => {
    child.once('error', (error) => {
      resolve({ exit: { code: null, signal: null, error }, output });
    });
    child.once('close', (code, signal) => {
      resolve({ exit: { code, signal }, output });
    });
  });
}

/** Sample lines of OpenMetrics text: everything but blank lines and `#` comments. */
function countSamples(openMetrics: string): number {
  return openMetrics.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#')).length;
}

/** The NUM SAMPLES column of promtool's block table, summed over blocks. */
function storedSamples(promtoolOutput: string): number {
  let total = 0;
  for (const line of promtoolOutput.split('\n')) {
    const columns = line.trim().split(/\s+/);
    if (columns.length < 8 || !/^[0-9A-Z]{26}$/.test(columns[0] ?? '')) continue;
    total += Number(columns[4]);
  }
  return total;
}

/**
 * Writes OpenMetrics text to TSDB blocks in dataDir with `promtool tsdb create-blocks-from
 * openmetrics`. Throws with promtool's output when it fails, or when it silently stored fewer
 * samples than the text holds (out-of-order or duplicate samples of a series).
 */
export async function backfill(openMetrics: string, dataDir: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'modelcanary-openmetrics-'));
  try {
    const file = join(dir, 'fixture.om');
    await writeFile(file, openMetrics);
    const { exit, output } = await run('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', file, dataDir]);
    if (exit.code !== 0) {
      throw new Error(`promtool tsdb create-blocks-from openmetrics failed (${describeExit(exit)}):\n${output}`);
    }
    const expected = countSamples(openMetrics);
    const stored = storedSamples(output);
    if (stored !== expected) {
      throw new Error(
        `promtool stored ${stored} of ${expected} samples: it drops out-of-order and duplicate samples of a series silently, so write each series in ascending time order:\n${output}`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Through the ChildProcess rather than cleanup.ts's pid: once Prometheus has exited, a reused pid
// is left alone.
function killQuietly(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
}

async function isReady(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

class PrometheusStartError extends Error {
  readonly addressInUse: boolean;
  constructor(message: string, output: string) {
    super(`${message}; its output:\n${output}`);
    this.addressInUse = output.includes('address already in use');
  }
}

async function launch(configFile: string, dataDir: string, dir: string): Promise<RunningPrometheus> {
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(dir, 'prometheus.log');
  // Logs go to a file rather than a pipe: an open pipe would keep this process alive after its
  // tests end when a test forgets stop(), and the exit hook would never run.
  const log = await open(logFile, 'w');
  const child = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${dataDir}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // Retention counts back from the newest block; fixtures from any date stay loaded.
      '--storage.tsdb.retention.time=100y',
      '--web.enable-lifecycle',
    ],
    { stdio: ['ignore', log.fd, log.fd] },
  );
  await log.close();
  child.unref();
  const output = async (): Promise<string> => (await readFile(logFile, 'utf8').catch(() => '')).slice(-OUTPUT_KEPT_CHARS);
  const exited = whenExited(child);
  if (child.pid === undefined) {
    throw new PrometheusStartError(`prometheus did not start: ${describeExit(await exited)}`, await output());
  }

  const watchdog = startWatchdog('modelcanary-prometheus-watchdog', [child.pid], dir);
  const leftovers: Leftovers = { pids: [child.pid], dir };
  killAtExit(leftovers);
  void exited.then(() => {
    // A Prometheus that died by itself must not leave a watchdog or an exit hook that later
    // kills a reused pid; its folder is still removed at exit.
    killWatchdog(watchdog);
    leftovers.pids = [];
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      killQuietly(child, 'SIGTERM');
      const grace = setTimeout(() => {
        killQuietly(child, 'SIGKILL');
      }, STOP_GRACE_MS);
      await exited;
      clearTimeout(grace);
      killWatchdog(watchdog);
      spareAtExit(leftovers);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    // exited stays settled, so it wins the race from the moment the process is gone.
    const ready = await Promise.race([isReady(url), exited]);
    if (ready === true) return { url, dataDir, stop };
    if (ready !== false) {
      spareAtExit(leftovers);
      throw new PrometheusStartError(`prometheus exited before it was ready (${describeExit(ready)})`, await output());
    }
    if (Date.now() > deadline) {
      const text = await output();
      await stop();
      throw new PrometheusStartError(`prometheus was not ready at ${url}/-/ready within ${READY_TIMEOUT_MS / 1000} s`, text);
    }
    await sleep(100);
  }
}

/**
 * Starts a real Prometheus on a free loopback port, backfilled with `openMetrics` and scraping
 * `scrapeTargets`, and resolves once `/-/ready` answers 200. Call stop() when done; a process
 * left running is killed when the test process exits.
 */
export async function startPrometheus(options: PrometheusOptions = {}): Promise<RunningPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'modelcanary-prometheus-'));
  try {
    const dataDir = join(dir, 'data');
    if (options.openMetrics !== undefined) await backfill(options.openMetrics, dataDir);

    const interval = options.scrapeInterval ?? '1s';
    const configFile = join(dir, 'prometheus.yml');
    const config = {
      global: { scrape_interval: interval, evaluation_interval: interval },
      ...(options.ruleFiles === undefined ? {} : { rule_files: options.ruleFiles }),
      scrape_configs: Object.entries({ mesh: options.scrapeTargets ?? [], ...options.scrapeJobs }).map(([job, targets]) => ({
        job_name: job,
        metrics_path: '/metrics',
        static_configs: [{ targets }],
      })),
    };
    await writeFile(configFile, stringify(config));

    // The port is free when chosen but may be taken before Prometheus binds it; try again then.
    for (let attempt = 1; ; attempt++) {
      try {
        return await launch(configFile, dataDir, dir);
      } catch (error) {
        if (!(error instanceof PrometheusStartError && error.addressInUse && attempt < 3)) throw error;
      }
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
