/**
 * Unit specs live beside the code (src/**\/*.spec.ts); e2e specs boot the app (test/**\/*.e2e-spec.ts).
 * The e2e suite runs on SQLite always, and once more on PostgreSQL when TEST_DATABASE_URL is set.
 */
const transform = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] };
const common = { moduleFileExtensions: ['js', 'json', 'ts'], testEnvironment: 'node', transform };
const e2e = {
  ...common,
  rootDir: 'test',
  testRegex: '.*\\.e2e-spec\\.ts$',
  setupFilesAfterEnv: ['<rootDir>/helpers/cleanup.ts'],
  // Jest's 5 s default is for unit tests: e2e tests that start servers or send hundreds of requests
  // overran it on 2 shared cores under load (load average 5-6), while passing in 1-3 s when alone.
  testTimeout: 30_000,
};

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    { ...common, displayName: 'unit', rootDir: 'src', testRegex: '.*\\.spec\\.ts$' },
    { ...e2e, displayName: 'e2e' },
    ...(process.env.TEST_DATABASE_URL
      ? [
          {
            ...e2e,
            displayName: 'e2e-postgres',
            setupFiles: ['<rootDir>/helpers/target-postgres.ts'],
          },
        ]
      : []),
  ],
};
