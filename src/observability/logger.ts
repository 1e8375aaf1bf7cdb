// Structured logs: fixed messages with fields, JSON in a cluster, one readable line on a TTY.

import { Writable } from 'node:stream';
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export function isLogLevel(value: string): value is LevelWithSilent {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Where lines go; default standard error. */
  destination?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Readable lines instead of JSON; default: when the destination is a terminal. */
  pretty?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? process.stderr;
  const pretty = options.pretty ?? destination.isTTY === true;
  return pino({ level: options.level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pretty ? readable(destination) : destination);
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** `12:03:04 INFO  check canary=ml/fraud action=advance weight=30`, one line per record. */
function readable(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        try {
          const { time, level, msg, ...fields } = JSON.parse(line) as Record<string, unknown>;
          const clock = typeof time === 'string' ? time.slice(11, 19) : '';
          const rest = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
          out.write(`${clock} ${(LEVEL_NAMES[Number(level)] ?? '').padEnd(5)} ${String(msg)} ${rest.join(' ')}\n`);
        } catch {
          out.write(`${line}\n`);
        }
      }
      done();
    },
  });
}
