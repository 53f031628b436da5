import { ConsoleLogger, LogLevel } from '@nestjs/common';
import type { Env, LogLevelName } from './config/env.validation';

const ORDER: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];
const NEST_LEVEL: Record<LogLevelName, LogLevel> = {
  fatal: 'fatal',
  error: 'error',
  warn: 'warn',
  info: 'log',
  debug: 'debug',
  verbose: 'verbose',
};

/** Whether `LOG_LEVEL` lets messages of Nest's `level` through. */
export function logsAt(threshold: LogLevelName, level: LogLevel): boolean {
  return ORDER.indexOf(level) <= ORDER.indexOf(NEST_LEVEL[threshold]);
}

/** JSON lines in production, Nest's readable format in development, filtered by `LOG_LEVEL`. */
export function createLogger(env: Pick<Env, 'NODE_ENV' | 'LOG_LEVEL'>): ConsoleLogger {
  return new ConsoleLogger({
    json: env.NODE_ENV === 'production',
    logLevels: ORDER.filter((level) => logsAt(env.LOG_LEVEL, level)),
    prefix: 'ChatSessions',
  });
}
