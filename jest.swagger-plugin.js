/**
 * The @nestjs/swagger CLI plugin as a ts-jest AST transformer, so tests that build the app in-process
 * document the DTOs as `nest build` does. jest.config.js passes it nest-cli.json's options.
 */
const { before } = require('@nestjs/swagger/plugin');

module.exports = {
  name: 'nestjs-swagger-plugin',
  // ts-jest keys its cache on this: a new @nestjs/swagger recompiles the DTOs.
  version: require('@nestjs/swagger/package.json').version,
  factory: (compiler, options) => before(options, compiler.program),
};
