/**
 * Unit specs live beside the code (src/**\/*.spec.ts); e2e specs boot the app (test/**\/*.e2e-spec.ts).
 * The e2e suite runs on SQLite always, and once more on PostgreSQL when TEST_DATABASE_URL is set.
 */
const { join } = require('node:path');
const nestCli = require('./nest-cli.json');

const swaggerPlugin = nestCli.compilerOptions.plugins.find((p) => p.name === '@nestjs/swagger');

/** Unit specs build no OpenAPI document: each file is compiled on its own (fast). */
const isolated = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] };

/**
 * The e2e tests build the app in-process, so the DTOs must go through the Swagger CLI plugin as in
 * `nest build`, with the same options. The plugin reads types across files: ts-jest compiles with
 * the whole program (isolatedModules off). Type errors are `npm run check`'s job, not the tests'.
 */
const withSwaggerPlugin = {
  '^.+\\.ts$': [
    'ts-jest',
    {
      tsconfig: { isolatedModules: false },
      diagnostics: false,
      astTransformers: {
        before: [
          { path: join(__dirname, 'jest.swagger-plugin.js'), options: swaggerPlugin.options },
        ],
      },
    },
  ],
};

const common = { moduleFileExtensions: ['js', 'json', 'ts'], testEnvironment: 'node' };
const e2e = {
  ...common,
  transform: withSwaggerPlugin,
  rootDir: 'test',
  testRegex: '.*\\.e2e-spec\\.ts$',
  setupFilesAfterEnv: ['<rootDir>/helpers/cleanup.ts'],
};

/** @type {import('jest').Config} */
module.exports = {
  // Jest's 5 s default is for unit tests: e2e tests that start servers or send hundreds of requests
  // overran it on 2 shared cores under load (load average 5-6), while passing in 1-3 s when alone.
  // A global option: Jest ignores testTimeout inside a project.
  testTimeout: 30_000,
  projects: [
    {
      ...common,
      transform: isolated,
      displayName: 'unit',
      rootDir: 'src',
      testRegex: '.*\\.spec\\.ts$',
    },
    {
      // The chat page's logic (web/src/lib): plain functions, compiled for Node like the unit specs.
      ...common,
      moduleFileExtensions: ['js', 'json', 'ts', 'tsx'],
      transform: {
        '^.+\\.tsx?$': [
          'ts-jest',
          {
            tsconfig: {
              module: 'commonjs',
              target: 'ES2022',
              lib: ['ES2023', 'DOM'],
              esModuleInterop: true,
              isolatedModules: true,
            },
          },
        ],
      },
      displayName: 'web',
      rootDir: 'web/src',
      testRegex: '.*\\.spec\\.ts$',
    },
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
