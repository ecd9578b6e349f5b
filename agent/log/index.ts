// The one logger factory: pino with defaults merged once. Library code takes a Logger, never console.
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

const defaultOptions: LoggerOptions = {
  base: undefined,
  timestamp: pino.stdTimeFunctions.isoTime,
  // Secrets must never reach a log line, whichever module logs the object that holds them.
  redact: { paths: ['*.key', '*.token', '*.agentKey', 'key', 'token', 'agentKey', 'authorization', '*.authorization'], censor: '[redacted]' },
};

/** Logs to stderr by default, so stdout stays free for the data a command prints. */
export function createLogger(options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  return pino({ ...defaultOptions, ...options }, destination ?? pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything, for tests and for commands run with `--quiet`. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
