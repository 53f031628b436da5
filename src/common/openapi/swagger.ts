import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type {
  OperationObject,
  ParameterObject,
  ResponseObject,
} from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import { applyRequestBodies, closeRequestBodies } from './openapi';
import { problemExample, SUCCESS_EXAMPLES } from './openapi-examples';
import { PROBLEM_CONTENT_TYPE, problemResponse } from '../problems/problem.dto';

export const CONTRACT_URL = 'docs/API.md';

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

const PATH_PARAMETERS: Record<string, Omit<ParameterObject, 'name' | 'in'>> = {
  id: {
    required: true,
    description:
      'The session id (a UUID, as `POST /api/v1/sessions` returned it). Any other id answers 404.',
    schema: { type: 'string', format: 'uuid' },
  },
  message_id: {
    required: true,
    description:
      'The message id (an integer, unique across all sessions, as `POST …/messages` returned it).',
    schema: { type: 'integer', minimum: 1 },
  },
};

/**
 * Completes what the decorators cannot say per operation: every operation answers 500 (documented
 * once, here, rather than by each decorator that adds problems, which made Swagger repeat it), every
 * response carries an example taken from a real response, and path ids are described.
 */
function complete(document: OpenAPIObject): OpenAPIObject {
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      const operation: OperationObject | undefined = item[method];
      if (!operation) continue;
      const key = `${method.toUpperCase()} ${path}`;
      operation.responses['500'] ??= problemResponse(500);
      // Every operation on stored data: a database that does not answer is a 503, and a write the
      // disk has no room for a 507 (see ProblemFilter).
      if (path.startsWith('/api/v1/')) {
        operation.responses['503'] ??= problemResponse(503);
        if (method !== 'get') operation.responses['507'] ??= problemResponse(507);
      }
      for (const [status, response] of Object.entries(operation.responses)) {
        const examples = Number(status) >= 400 ? null : SUCCESS_EXAMPLES[key];
        // New content objects: decorators may share one between responses of different statuses.
        const content = (response as ResponseObject).content;
        if (!content) continue;
        (response as ResponseObject).content = Object.fromEntries(
          Object.entries(content).map(([mediaType, media]) => [
            mediaType,
            {
              ...media,
              example:
                mediaType === PROBLEM_CONTENT_TYPE
                  ? problemExample(key, Number(status))
                  : examples?.[mediaType],
            },
          ]),
        );
      }
      for (const parameter of (operation.parameters ?? []) as ParameterObject[]) {
        if (parameter.in === 'path' && PATH_PARAMETERS[parameter.name]) {
          Object.assign(parameter, PATH_PARAMETERS[parameter.name]);
        }
      }
    }
  }
  return document;
}

export function buildOpenApiDocument(app: INestApplication, appName: string): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle(appName)
    .setDescription(
      'Stores chat conversations: sessions and their messages. The full contract (behaviour, limits, ' +
        `configuration) is \`${CONTRACT_URL}\` in the repository.\n\n` +
        'Errors are RFC 9457 problem documents (`application/problem+json`). Every path also answers ' +
        'with a trailing slash.\n\n' +
        'With `AUTH_MODE=api-key`, every `/api/v1` operation needs `Authorization: Bearer <key>`: create a key ' +
        'with `npm run apikey -- create --owner <name>`, then press **Authorize** and paste it.',
    )
    .setVersion('1.1.0')
    .addBearerAuth({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'API key',
      description:
        'An API key (AUTH_MODE=api-key): `npm run apikey -- create --owner <name>` prints it on its last line. Not needed with AUTH_MODE=none.',
    })
    .build();
  return complete(
    closeRequestBodies(applyRequestBodies(SwaggerModule.createDocument(app, config))),
  );
}

/** Serves the Swagger UI at /docs and the document at /docs-json. */
export function setupSwagger(app: INestApplication, appName: string): void {
  SwaggerModule.setup('docs', app, buildOpenApiDocument(app, appName), {
    jsonDocumentUrl: 'docs-json',
    customSiteTitle: `${appName} — API docs`,
    // The key typed into Authorize survives a reload of the page.
    swaggerOptions: { persistAuthorization: true },
  });
}
