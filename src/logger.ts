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

/** JSON lines in production, Nest's readable format in development, filtered by `LOG_LEVEL`. */
export function createLogger(env: Pick<Env, 'NODE_ENV' | 'LOG_LEVEL'>): ConsoleLogger {
  const threshold = ORDER.indexOf(NEST_LEVEL[env.LOG_LEVEL]);
  return new ConsoleLogger({
    json: env.NODE_ENV === 'production',
    logLevels: ORDER.slice(0, threshold + 1),
    prefix: 'ChatSessions',
  });
}
