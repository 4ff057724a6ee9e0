import { pino } from 'pino';

/**
 * The logger every component receives. pino's logger satisfies it; so does {@link silentLogger}.
 * Log calls take a structured object first, then a message (pino's convention).
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/** Creates clowder's default logger: pino to stderr at `level` (default: env CLOWDER_LOG_LEVEL, else info). */
export function createLogger(level = process.env.CLOWDER_LOG_LEVEL ?? 'info', name = 'clowder'): Logger {
  return pino({ name, level }, pino.destination({ fd: 2, sync: false }));
}
