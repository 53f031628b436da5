import type { OpenAPIObject } from '@nestjs/swagger';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

/**
 * Swagger Parser depends on an ES-module-only package, which Jest's module loader cannot require
 * before Node 24.9 (Node itself can since 20.19), so the parser runs in a plain Node process:
 * the document goes in on stdin, the result comes back as JSON on stdout.
 */
const SCRIPT = `
const SwaggerParser = require('@apidevtools/swagger-parser');
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', async () => {
  const { method, document } = JSON.parse(input);
  try {
    process.stdout.write(JSON.stringify({ api: await SwaggerParser[method](document) }));
  } catch (error) {
    process.stdout.write(JSON.stringify({ error: String(error.message) }));
  }
});
`;

function runParser(method: 'validate' | 'dereference', document: unknown): Promise<OpenAPIObject> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['-e', SCRIPT], { cwd: resolve(__dirname, '../..') });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', fail);
    child.on('close', () => {
      try {
        const result = JSON.parse(stdout) as { api?: OpenAPIObject; error?: string };
        if (result.api) done(result.api);
        else fail(new Error(`SwaggerParser.${method}: ${result.error}`));
      } catch {
        fail(new Error(`SwaggerParser.${method} failed: ${stderr || stdout}`));
      }
    });
    child.stdin.end(JSON.stringify({ method, document }));
  });
}

/** `SwaggerParser.validate`: resolves to the dereferenced document, rejects naming what is invalid. */
export function validateOpenApi(document: unknown): Promise<OpenAPIObject> {
  return runParser('validate', document);
}

/** `SwaggerParser.dereference`: the document with every `$ref` replaced by its target. */
export function dereferenceOpenApi(document: unknown): Promise<OpenAPIObject> {
  return runParser('dereference', document);
}
