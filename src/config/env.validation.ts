import { isIP } from 'node:net';
import { length } from 'class-validator';
import { isStorableText } from '../common/fields/json-bounds';
import { LLM_MODEL_NAME_MAX } from '../sessions/dto/session.dto';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'verbose'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

export type DatabaseTarget = { type: 'sqlite'; path: string } | { type: 'postgres'; url: string };

/** The validated environment. Keys keep their variable names so `ConfigService.get('PORT')` reads naturally. */
export interface Env {
  NODE_ENV: string;
  PORT: number;
  HOST: string;
  APP_NAME: string;
  DATABASE_URL: string;
  DATABASE: DatabaseTarget;
  DEFAULT_MODEL_NAME: string;
  LOG_LEVEL: LogLevelName;
  CORS_ORIGINS: string[];
  SQLITE_SYNCHRONOUS: 'FULL' | 'NORMAL';
  DB_POOL_SIZE: number;
  DB_CONNECT_TIMEOUT_MS: number;
  DB_STATEMENT_TIMEOUT_MS: number;
  DB_STARTUP_TIMEOUT_MS: number;
  AUTH_MODE: 'none' | 'api-key';
  RATE_LIMIT_PER_MINUTE: number;
  REDIS_URL: string | null;
  BEHIND_HTTPS: boolean;
  RETENTION_DAYS: number;
  RETENTION_SWEEP_INTERVAL_MS: number;
  /** Empty: replies are off. */
  LLM_BASE_URL: string;
  /** Empty: no Authorization header. Never part of a message or a log line. */
  LLM_API_KEY: string;
  LLM_TIMEOUT_MS: number;
  LLM_CONTEXT_MESSAGES: number;
}

/** Raised for a bad environment value; its message is the one line printed before exiting. */
export class ConfigError extends Error {
  constructor(variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

function text(env: Record<string, unknown>, name: string, fallback: string): string {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  if (typeof value !== 'string') throw new ConfigError(name, 'must be a string');
  return value.trim();
}

function oneOf<T extends string>(
  env: Record<string, unknown>,
  name: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const value = text(env, name, fallback);
  const match = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (!match) throw new ConfigError(name, `must be one of ${allowed.join(', ')} (got '${value}')`);
  return match;
}

function integer(
  env: Record<string, unknown>,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const value = text(env, name, String(fallback));
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed < min || parsed > max) {
    throw new ConfigError(name, `must be an integer from ${min} to ${max} (got '${value}')`);
  }
  return parsed;
}

function flag(env: Record<string, unknown>, name: string, fallback: boolean): boolean {
  const value = text(env, name, String(fallback)).toLowerCase();
  if (value !== 'true' && value !== 'false') {
    throw new ConfigError(name, `must be true or false (got '${value}')`);
  }
  return value === 'true';
}

function httpUrl(value: string): URL | null {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== ''
      ? url
      : null;
  } catch {
    return null;
  }
}

export function parseDatabaseUrl(url: string): DatabaseTarget {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new ConfigError('DATABASE_URL', "needs a file path after 'sqlite:'");
    return { type: 'sqlite', path };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    let host = '';
    try {
      host = new URL(url).hostname;
    } catch {
      // reported below
    }
    if (!host)
      throw new ConfigError('DATABASE_URL', 'is not a valid postgres://user:pass@host:port/db URL');
    return { type: 'postgres', url };
  }
  throw new ConfigError(
    'DATABASE_URL',
    "must start with 'sqlite:' (e.g. sqlite:./data/chat.sqlite) or 'postgres://'",
  );
}

/** The `validate` function of `ConfigModule`: checks every variable, fills defaults, throws `ConfigError`. */
export function validateEnv(env: Record<string, unknown>): Env {
  const port = integer(env, 'PORT', 8000, 1, 65535);
  const host = text(env, 'HOST', '127.0.0.1');
  if (host !== 'localhost' && isIP(host) === 0) {
    throw new ConfigError('HOST', `must be an IP address or 'localhost' (got '${host}')`);
  }
  const databaseUrl = text(env, 'DATABASE_URL', 'sqlite:./data/chat.sqlite');
  const corsOrigins = text(env, 'CORS_ORIGINS', '')
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  for (const origin of corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(
        'CORS_ORIGINS',
        `has an invalid origin '${origin}' (use scheme://host[:port])`,
      );
    }
  }
  const appName = text(env, 'APP_NAME', 'Chat Sessions API');
  const authMode = oneOf(env, 'AUTH_MODE', ['none', 'api-key'] as const, 'none');
  const redisUrl = text(env, 'REDIS_URL', '');
  if (redisUrl !== '' && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) {
    throw new ConfigError('REDIS_URL', `must be a redis:// or rediss:// URL (got '${redisUrl}')`);
  }
  const llmBaseUrl = text(env, 'LLM_BASE_URL', '');
  if (llmBaseUrl !== '') {
    const url = httpUrl(llmBaseUrl);
    // Not echoed: a base URL may carry credentials (https://user:secret@host/v1).
    if (!url) {
      throw new ConfigError(
        'LLM_BASE_URL',
        'must be an http:// or https:// URL (e.g. http://127.0.0.1:11434/v1)',
      );
    }
    // fetch refuses every request to a URL with credentials in it.
    if (url.username !== '' || url.password !== '') {
      throw new ConfigError(
        'LLM_BASE_URL',
        'must not contain a user name or password (the key goes in LLM_API_KEY)',
      );
    }
  }
  const llmApiKey = text(env, 'LLM_API_KEY', '');
  // Never echoed. A header value refused by fetch would put the key in fetch's own error message.
  if (!/^[\x21-\x7e]*$/.test(llmApiKey)) {
    throw new ConfigError('LLM_API_KEY', 'must be printable ASCII without spaces');
  }
  const defaultModelName = text(env, 'DEFAULT_MODEL_NAME', 'default');
  // Sessions carry it as llm_model_name, which their export must bring back through the import.
  if (!length(defaultModelName, 1, LLM_MODEL_NAME_MAX) || !isStorableText(defaultModelName)) {
    throw new ConfigError(
      'DEFAULT_MODEL_NAME',
      `must be 1 to ${LLM_MODEL_NAME_MAX} characters of valid Unicode text`,
    );
  }
  return {
    NODE_ENV: text(env, 'NODE_ENV', 'development'),
    PORT: port,
    HOST: host,
    APP_NAME: appName,
    DATABASE_URL: databaseUrl,
    DATABASE: parseDatabaseUrl(databaseUrl),
    DEFAULT_MODEL_NAME: defaultModelName,
    LOG_LEVEL: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    CORS_ORIGINS: corsOrigins,
    SQLITE_SYNCHRONOUS: oneOf(env, 'SQLITE_SYNCHRONOUS', ['FULL', 'NORMAL'] as const, 'FULL'),
    // At least 2: at start-up one connection holds the migration lock while another migrates.
    DB_POOL_SIZE: integer(env, 'DB_POOL_SIZE', 10, 2, 1000),
    DB_CONNECT_TIMEOUT_MS: integer(env, 'DB_CONNECT_TIMEOUT_MS', 5000, 100, 600_000),
    DB_STATEMENT_TIMEOUT_MS: integer(env, 'DB_STATEMENT_TIMEOUT_MS', 30_000, 0, 3_600_000),
    DB_STARTUP_TIMEOUT_MS: integer(env, 'DB_STARTUP_TIMEOUT_MS', 30_000, 0, 3_600_000),
    AUTH_MODE: authMode,
    // One local user has no one to be limited against; shared deployments get a default limit.
    RATE_LIMIT_PER_MINUTE: integer(
      env,
      'RATE_LIMIT_PER_MINUTE',
      authMode === 'api-key' ? 600 : 0,
      0,
      1_000_000,
    ),
    REDIS_URL: redisUrl === '' ? null : redisUrl,
    // Off by default: HSTS and upgrade-insecure-requests break every plain-HTTP address.
    BEHIND_HTTPS: flag(env, 'BEHIND_HTTPS', false),
    // 0 keeps every session; at most about 270 years, so the cutoff stays an exact integer.
    RETENTION_DAYS: integer(env, 'RETENTION_DAYS', 0, 0, 100_000),
    // 0 stops the sweep: expired sessions stay hidden, their rows stay until a process sweeps.
    RETENTION_SWEEP_INTERVAL_MS: integer(env, 'RETENTION_SWEEP_INTERVAL_MS', 60_000, 0, 86_400_000),
    LLM_BASE_URL: llmBaseUrl,
    LLM_API_KEY: llmApiKey,
    LLM_TIMEOUT_MS: integer(env, 'LLM_TIMEOUT_MS', 120_000, 1000, 3_600_000),
    LLM_CONTEXT_MESSAGES: integer(env, 'LLM_CONTEXT_MESSAGES', 50, 1, 10_000),
  };
}
