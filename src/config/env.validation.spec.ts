import { ConfigError, validateEnv } from './env.validation';

describe('validateEnv', () => {
  it('fills the contract defaults', () => {
    expect(validateEnv({})).toEqual({
      NODE_ENV: 'development',
      PORT: 8000,
      HOST: '127.0.0.1',
      APP_NAME: 'Chat Sessions API',
      DATABASE_URL: 'sqlite:./data/chat.sqlite',
      DATABASE: { type: 'sqlite', path: './data/chat.sqlite' },
      DEFAULT_MODEL_NAME: 'default',
      LOG_LEVEL: 'info',
      CORS_ORIGINS: [],
      SQLITE_SYNCHRONOUS: 'FULL',
      DB_POOL_SIZE: 10,
      DB_CONNECT_TIMEOUT_MS: 5000,
      DB_STATEMENT_TIMEOUT_MS: 30_000,
      DB_STARTUP_TIMEOUT_MS: 30_000,
      AUTH_MODE: 'none',
      RATE_LIMIT_PER_MINUTE: 0,
      REDIS_URL: null,
      BEHIND_HTTPS: false,
      RETENTION_DAYS: 0,
      RETENTION_SWEEP_INTERVAL_MS: 60_000,
      LLM_BASE_URL: '',
      LLM_API_KEY: '',
      LLM_TIMEOUT_MS: 120_000,
      LLM_CONTEXT_MESSAGES: 50,
    });
  });

  it('reads the language model variables', () => {
    expect(
      validateEnv({
        LLM_BASE_URL: 'http://127.0.0.1:11434/v1',
        LLM_API_KEY: 'sk-test-123',
        LLM_TIMEOUT_MS: '1000',
        LLM_CONTEXT_MESSAGES: '10000',
      }),
    ).toMatchObject({
      LLM_BASE_URL: 'http://127.0.0.1:11434/v1',
      LLM_API_KEY: 'sk-test-123',
      LLM_TIMEOUT_MS: 1000,
      LLM_CONTEXT_MESSAGES: 10_000,
    });
    expect(validateEnv({ LLM_BASE_URL: 'https://api.openai.com/v1' }).LLM_BASE_URL).toBe(
      'https://api.openai.com/v1',
    );
    expect(validateEnv({ LLM_TIMEOUT_MS: '3600000' }).LLM_TIMEOUT_MS).toBe(3_600_000);
    expect(validateEnv({ LLM_CONTEXT_MESSAGES: '1' }).LLM_CONTEXT_MESSAGES).toBe(1);
  });

  it.each([
    ['LLM_BASE_URL', 'htps://user:hunter2@llm.example/v1'],
    ['LLM_BASE_URL', 'https://user:hunter2@llm.example/v1'],
    ['LLM_BASE_URL', 'https://hunter2@llm.example/v1'],
    ['LLM_API_KEY', 'sk-hunter2 with spaces'],
    ['LLM_API_KEY', 'sk-\nhunter2'],
  ])('refuses a bad %s without echoing it', (name, value) => {
    expect(() => validateEnv({ [name]: value })).toThrow(
      new RegExp(`^Invalid configuration: ${name} [^\\n]*$`),
    );
    expect(() => validateEnv({ [name]: value })).not.toThrow(/hunter2/);
  });

  it('reads RETENTION_DAYS as a non-negative integer', () => {
    expect(validateEnv({ RETENTION_DAYS: '30' }).RETENTION_DAYS).toBe(30);
    expect(validateEnv({ RETENTION_DAYS: '0' }).RETENTION_DAYS).toBe(0);
  });

  it('limits requests by default only with API keys', () => {
    expect(validateEnv({ AUTH_MODE: 'api-key' }).RATE_LIMIT_PER_MINUTE).toBe(600);
    expect(
      validateEnv({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '0' }).RATE_LIMIT_PER_MINUTE,
    ).toBe(0);
    expect(validateEnv({ RATE_LIMIT_PER_MINUTE: '30' }).RATE_LIMIT_PER_MINUTE).toBe(30);
    expect(validateEnv({ REDIS_URL: 'redis://127.0.0.1:6379' }).REDIS_URL).toBe(
      'redis://127.0.0.1:6379',
    );
  });

  it('reads every variable', () => {
    const env = validateEnv({
      PORT: '9000',
      HOST: '0.0.0.0',
      APP_NAME: 'My Chat',
      DATABASE_URL: 'postgres://u:p@localhost:5432/chat',
      DEFAULT_MODEL_NAME: 'gpt-x',
      LOG_LEVEL: 'DEBUG',
      CORS_ORIGINS: 'https://a.example, http://localhost:3000',
      SQLITE_SYNCHRONOUS: 'normal',
    });
    expect(env).toMatchObject({
      PORT: 9000,
      HOST: '0.0.0.0',
      APP_NAME: 'My Chat',
      DATABASE: { type: 'postgres', url: 'postgres://u:p@localhost:5432/chat' },
      DEFAULT_MODEL_NAME: 'gpt-x',
      LOG_LEVEL: 'debug',
      CORS_ORIGINS: ['https://a.example', 'http://localhost:3000'],
      SQLITE_SYNCHRONOUS: 'NORMAL',
    });
  });

  it('reads BEHIND_HTTPS as true or false, in any case', () => {
    expect(validateEnv({ BEHIND_HTTPS: 'TRUE' }).BEHIND_HTTPS).toBe(true);
    expect(validateEnv({ BEHIND_HTTPS: 'false' }).BEHIND_HTTPS).toBe(false);
    expect(validateEnv({ BEHIND_HTTPS: '' }).BEHIND_HTTPS).toBe(false);
  });

  it.each([
    ['sqlite::memory:', { type: 'sqlite', path: ':memory:' }],
    ['sqlite:/var/lib/chat.db', { type: 'sqlite', path: '/var/lib/chat.db' }],
    ['sqlite:///var/lib/chat.db', { type: 'sqlite', path: '/var/lib/chat.db' }],
    ['postgresql://localhost/chat', { type: 'postgres', url: 'postgresql://localhost/chat' }],
  ])('parses DATABASE_URL %s', (url, target) => {
    expect(validateEnv({ DATABASE_URL: url }).DATABASE).toEqual(target);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '0'],
    ['PORT', '65536'],
    ['PORT', '80.5'],
    ['HOST', 'not a host'],
    ['DATABASE_URL', 'mysql://localhost/db'],
    ['DATABASE_URL', 'sqlite:'],
    ['DATABASE_URL', 'postgres://'],
    ['LOG_LEVEL', 'loud'],
    ['CORS_ORIGINS', 'not-an-origin'],
    ['SQLITE_SYNCHRONOUS', 'OFF'],
    ['DB_POOL_SIZE', '0'],
    ['DB_POOL_SIZE', '1'],
    ['AUTH_MODE', 'basic'],
    ['RATE_LIMIT_PER_MINUTE', 'lots'],
    ['REDIS_URL', 'http://localhost:6379'],
    ['DB_STATEMENT_TIMEOUT_MS', '-1'],
    ['BEHIND_HTTPS', 'yes'],
    ['RETENTION_DAYS', '-1'],
    ['RETENTION_DAYS', '1.5'],
    ['RETENTION_DAYS', 'forever'],
    ['RETENTION_SWEEP_INTERVAL_MS', '-5'],
    ['LLM_BASE_URL', 'ftp://llm.example/v1'],
    ['LLM_BASE_URL', '127.0.0.1:11434/v1'],
    ['LLM_BASE_URL', 'http://'],
    ['LLM_BASE_URL', 'not a url'],
    ['LLM_API_KEY', 'sk-\u0000'],
    ['LLM_API_KEY', 'sk-1 2'],
    ['LLM_TIMEOUT_MS', '999'],
    ['LLM_TIMEOUT_MS', '3600001'],
    ['LLM_TIMEOUT_MS', '1.5e3'],
    ['LLM_CONTEXT_MESSAGES', '0'],
    ['LLM_CONTEXT_MESSAGES', '10001'],
    ['LLM_CONTEXT_MESSAGES', 'all'],
  ])('refuses %s=%s with one line naming the variable', (name, value) => {
    let error: unknown;
    try {
      validateEnv({ [name]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(new RegExp(`^Invalid configuration: ${name} `));
    expect(message).not.toContain('\n');
  });
});
