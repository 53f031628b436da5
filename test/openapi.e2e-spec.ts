import type {
  HeaderObject,
  OpenAPIObject,
  OperationObject,
  ParameterObject,
  RequestBodyObject,
  ResponseObject,
  SchemaObject,
} from '@nestjs/swagger';
import Ajv, { type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import { existsSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { join } from 'node:path';
import request from 'supertest';
import { inFlight } from '../src/idempotency/idempotency.service';
import { dereferenceOpenApi, validateOpenApi } from './helpers/swagger-parser';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

const PROBLEM_REF = '#/components/schemas/ProblemDto';
const ONE_MIB = 1024 * 1024;
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

/** Every operation of the contract and the statuses it answers with: success first, then problems. */
const OPERATIONS: [string, number[]][] = [
  ['GET /', [200, 500]],
  ['POST /api/v1/sessions', [201, 400, 401, 409, 413, 415, 422, 429, 500, 503, 507]],
  ['GET /api/v1/sessions', [200, 400, 401, 429, 500, 503]],
  ['GET /api/v1/sessions/{id}', [200, 401, 404, 429, 500, 503]],
  ['DELETE /api/v1/sessions/{id}', [204, 401, 404, 429, 500, 503, 507]],
  [
    'POST /api/v1/sessions/{id}/messages',
    [201, 400, 401, 404, 409, 413, 415, 422, 429, 500, 503, 507],
  ],
  ['GET /api/v1/sessions/{id}/messages', [200, 400, 401, 404, 429, 500, 503]],
  ['PATCH /api/v1/sessions/{id}', [200, 400, 401, 404, 413, 415, 429, 500, 503, 507]],
  ['GET /api/v1/sessions/{id}/messages/{message_id}', [200, 401, 404, 429, 500, 503]],
  ['DELETE /api/v1/sessions/{id}/messages/{message_id}', [204, 401, 404, 429, 500, 503, 507]],
  ['GET /health/live', [200, 500]],
  ['GET /health/ready', [200, 500, 503]],
  ['GET /api/v1/search', [200, 400, 401, 404, 429, 500, 503]],
  ['GET /api/v1/sessions/{id}/export', [200, 400, 401, 404, 429, 500, 503]],
  ['GET /api/v1/export', [200, 400, 401, 429, 500, 503]],
  ['POST /api/v1/import', [201, 400, 401, 409, 413, 415, 422, 429, 500, 503, 507]],
];

/** The media types of each success response; JSON unless listed here. */
const SUCCESS_TYPES: Record<string, string[]> = {
  'GET /api/v1/sessions/{id}/export': ['application/json', 'text/markdown'],
  'GET /api/v1/export': ['application/x-ndjson'],
};

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** OpenAPI 3.0 schemas are JSON Schema plus a few keywords; Ajv 8 knows `nullable`, not `example`. */
const ajv = new Ajv({ allErrors: true, strict: true });
addFormats(ajv);
ajv.addVocabulary(['example']);

function describeError(error: ErrorObject): string {
  const extra = (error.params as { additionalProperty?: string }).additionalProperty;
  return `${error.instancePath || '/'} ${error.message}${extra ? `: ${extra}` : ''}`;
}

function schemaErrors(schema: SchemaObject, value: unknown): string[] {
  const validate = ajv.compile(schema);
  return validate(value) ? [] : (validate.errors ?? []).map(describeError);
}

/**
 * A response schema made strict: every object may carry only the properties it documents, so a
 * field the server sends but the document does not mention fails. Explicit `additionalProperties`
 * (free-form `metadata`) is kept.
 */
function closed(schema: SchemaObject): SchemaObject {
  const copy: SchemaObject = { ...schema };
  if (schema.properties) {
    copy.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([name, sub]) => [name, closed(sub as SchemaObject)]),
    );
    copy.additionalProperties ??= false;
  }
  if (schema.items) copy.items = closed(schema.items as SchemaObject);
  for (const key of ['allOf', 'anyOf', 'oneOf'] as const) {
    if (schema[key]) copy[key] = schema[key].map((sub) => closed(sub as SchemaObject));
  }
  return copy;
}

/** `GET /api/v1/sessions/{id}` → that operation of the document (throws if it is not documented). */
function operationOf(document: OpenAPIObject, key: string): OperationObject {
  const [method, path] = key.split(' ');
  const item = document.paths[path] as Record<string, OperationObject | undefined> | undefined;
  const operation = item?.[method.toLowerCase()];
  if (!operation) throw new Error(`${key} is not documented`);
  return operation;
}

function documentedOperations(document: OpenAPIObject): string[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    HTTP_METHODS.filter((method) => item[method]).map(
      (method) => `${method.toUpperCase()} ${path}`,
    ),
  );
}

/** The routes Express really serves (Nest registers one per method and path), without the docs UI. */
function servedOperations(t: TestApp): string[] {
  const router = t.app.getHttpAdapter().getInstance().router as {
    stack: { route?: { path: string; methods: Record<string, boolean> } }[];
  };
  return router.stack
    .flatMap(({ route }) =>
      route
        ? Object.keys(route.methods).map(
            (method) => `${method.toUpperCase()} ${route.path.replace(/:(\w+)/g, '{$1}')}`,
          )
        : [],
    )
    .filter((operation) => !/ \/docs\b/.test(operation));
}

function parameterOf(operation: OperationObject, name: string): ParameterObject | undefined {
  return (operation.parameters as ParameterObject[] | undefined)?.find((p) => p.name === name);
}

describe('OpenAPI document (e2e)', () => {
  let t: TestApp;
  /** The document as served, with `$ref`s. */
  let doc: OpenAPIObject;
  /** The same document with every `$ref` replaced by its target. */
  let resolved: OpenAPIObject;

  beforeAll(async () => {
    t = await createTestApp({ APP_NAME: 'Test Chat' });
    const res = await request(t.http).get('/docs-json');
    doc = res.body;
    resolved = await dereferenceOpenApi(res.body);
  });
  afterAll(() => t.close());
  beforeEach(() => resetDatabase(t.db));

  /**
   * Asserts that a real response is one the document describes for that operation: a documented
   * status, a documented media type, every required header (and any optional one present), and a body that matches the schema
   * with no undocumented field.
   */
  function expectDocumented(res: request.Response, operation: string): void {
    const responses = operationOf(resolved, operation).responses;
    expect(Object.keys(responses)).toContain(String(res.status));
    const documented = responses[res.status] as ResponseObject;

    for (const [name, header] of Object.entries(documented.headers ?? {})) {
      const raw = res.headers[name.toLowerCase()] as string | undefined;
      if (raw === undefined && !(header as HeaderObject).required) continue;
      const schema = (header as HeaderObject).schema as SchemaObject;
      const value = schema.type === 'integer' && raw && /^\d+$/.test(raw) ? Number(raw) : raw;
      expect({ header: name, errors: schemaErrors(schema, value) }).toEqual({
        header: name,
        errors: [],
      });
    }

    if (!documented.content) {
      expect({ type: res.headers['content-type'], text: res.text }).toEqual({
        type: undefined,
        text: '',
      });
      return;
    }
    const mediaType = String(res.headers['content-type']).split(';')[0];
    expect(Object.keys(documented.content)).toContain(mediaType);
    const schema = documented.content[mediaType].schema as SchemaObject;
    // Text media types (Markdown, NDJSON) are documented as strings.
    const body: unknown = /json$/.test(mediaType) ? res.body : res.text;
    expect(schemaErrors(closed(schema), body)).toEqual([]);
  }

  /** The documented JSON request body schema of an operation, as the document states it. */
  function bodySchemaOf(operation: string): SchemaObject {
    const requestBody = operationOf(resolved, operation).requestBody as RequestBodyObject;
    expect(Object.keys(requestBody.content)).toEqual(['application/json']);
    return requestBody.content['application/json'].schema as SchemaObject;
  }

  function documentedBodyAccepts(operation: string, body: unknown): boolean {
    return schemaErrors(bodySchemaOf(operation), body).length === 0;
  }

  async function createSession(body: object = {}): Promise<string> {
    const res = await request(t.http).post('/api/v1/sessions').send(body);
    expect(res.status).toBe(201);
    return res.body.id as string;
  }

  describe('GET /docs-json', () => {
    it('serves a valid OpenAPI 3 document titled with APP_NAME', async () => {
      const res = await request(t.http).get('/docs-json');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toMatchObject({
        openapi: expect.stringMatching(/^3\./),
        info: { title: 'Test Chat' },
      });
      await expect(validateOpenApi(res.body)).resolves.toMatchObject({ paths: expect.any(Object) });
    });

    it('documents every route the server serves, and no other', () => {
      const served = servedOperations(t).sort();
      expect(served).toEqual(expect.arrayContaining(OPERATIONS.map(([operation]) => operation)));
      expect(documentedOperations(doc).sort()).toEqual(served);
    });

    it.each(OPERATIONS)('%s documents exactly the statuses %j', (operation, statuses) => {
      const responses = operationOf(doc, operation).responses;
      expect(Object.keys(responses).sort()).toEqual(statuses.map(String).sort());

      const [success, ...problems] = statuses;
      const content = (responses[success] as ResponseObject).content;
      if (success === 204) expect(content).toBeUndefined();
      else {
        expect(Object.keys(content ?? {})).toEqual(
          SUCCESS_TYPES[operation] ?? ['application/json'],
        );
      }

      for (const status of problems) {
        expect({ status, content: (responses[status] as ResponseObject).content }).toEqual({
          status,
          content: {
            'application/problem+json': {
              schema: { $ref: PROBLEM_REF },
              example: expect.objectContaining({ status, title: STATUS_CODES[status] }),
            },
          },
        });
      }
    });

    it.each(['GET /api/v1/sessions', 'GET /api/v1/sessions/{id}/messages'])(
      '%s documents the X-Total-Count and Link headers',
      (operation) => {
        const ok = operationOf(doc, operation).responses[200] as ResponseObject;
        expect(ok.headers).toEqual({
          'X-Total-Count': {
            description: expect.any(String),
            required: true,
            schema: { type: 'integer' },
          },
          Link: {
            description: expect.stringContaining('rel="next"'),
            required: false,
            schema: { type: 'string' },
          },
        });
      },
    );

    it.each([
      ['GET /api/v1/sessions', 50],
      ['GET /api/v1/sessions/{id}/messages', 1000],
    ])(
      '%s documents skip and limit with their bounds (limit defaults to %d)',
      (operation, limit) => {
        const op = operationOf(doc, operation);
        expect(parameterOf(op, 'skip')).toEqual({
          name: 'skip',
          in: 'query',
          required: false,
          description: expect.any(String),
          schema: { type: 'integer', minimum: 0, default: 0 },
        });
        expect(parameterOf(op, 'limit')).toEqual({
          name: 'limit',
          in: 'query',
          required: false,
          description: expect.any(String),
          schema: { type: 'integer', minimum: 1, maximum: 1000, default: limit },
        });
      },
    );

    it.each(OPERATIONS.filter(([operation]) => operation.includes('{id}')))(
      '%s documents the id path parameter',
      (operation) => {
        expect(parameterOf(operationOf(doc, operation), 'id')).toEqual({
          name: 'id',
          in: 'path',
          required: true,
          description: expect.stringContaining('UUID'),
          schema: { type: 'string', format: 'uuid' },
        });
      },
    );

    it.each(OPERATIONS)('%s has a summary, a description and a description per response', (key) => {
      const operation = operationOf(doc, key);
      expect({ summary: operation.summary, description: operation.description }).toEqual({
        summary: expect.stringMatching(/^[A-Z][^.]{3,60}$/),
        description: expect.stringMatching(/^.{20,}$/s),
      });
      for (const [status, response] of Object.entries(operation.responses)) {
        const description = (response as ResponseObject).description;
        expect({ status, description }).toEqual({
          status,
          description: expect.stringMatching(/\w/),
        });
        // The same description twice is what a problem decorator applied twice used to produce.
        const [first] = description.split('\n\n');
        expect({ status, repeats: description.split(first).length - 1 }).toEqual({
          status,
          repeats: 1,
        });
      }
    });

    it.each(OPERATIONS)('%s gives every response an example that its schema accepts', (key) => {
      const operation = operationOf(resolved, key);
      for (const [status, response] of Object.entries(operation.responses)) {
        for (const [mediaType, media] of Object.entries(
          (response as ResponseObject).content ?? {},
        )) {
          const where = `${status} ${mediaType}`;
          expect({ where, hasExample: media.example !== undefined }).toEqual({
            where,
            hasExample: true,
          });
          expect({
            where,
            errors: schemaErrors(closed(media.schema as SchemaObject), media.example),
          }).toEqual({ where, errors: [] });
          if (mediaType === 'application/problem+json') {
            expect({ where, status: (media.example as { status: number }).status }).toEqual({
              where,
              status: Number(status),
            });
          }
        }
      }
    });

    it('declares the bearer scheme, required by every /api/v1 operation and by no other', () => {
      expect(doc.components?.securitySchemes).toEqual({
        bearer: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
      });
      for (const [key] of OPERATIONS) {
        expect({ key, security: operationOf(doc, key).security }).toEqual({
          key,
          security: key.includes(' /api/v1/') ? [{ bearer: [] }] : undefined,
        });
      }
    });

    it('points readers at the contract in the repository', () => {
      expect(doc.info.description).toContain('docs/API.md');
      expect(existsSync(join(__dirname, '..', 'docs', 'API.md'))).toBe(true);
    });
  });

  describe('GET /docs', () => {
    it('serves the Swagger UI page', async () => {
      const res = await request(t.http).get('/docs');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.text).toContain('swagger-ui');
    });
  });

  describe('the response checks used below', () => {
    const problemSchema = () => closed(resolved.components?.schemas?.ProblemDto as SchemaObject);
    const notFound = {
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      detail: 'x',
      instance: '/',
    };

    it('accept a documented body, and catch undocumented, missing and mistyped fields', () => {
      expect(schemaErrors(problemSchema(), notFound)).toEqual([]);
      expect(schemaErrors(problemSchema(), { ...notFound, stack: 'at …' })).toEqual([
        '/ must NOT have additional properties: stack',
      ]);
      expect(
        schemaErrors(problemSchema(), {
          ...notFound,
          errors: [{ field: 'a', message: 'b', x: 1 }],
        }),
      ).toEqual(['/errors/0 must NOT have additional properties: x']);
      const withoutDetail: Partial<typeof notFound> = { ...notFound };
      delete withoutDetail.detail;
      expect(schemaErrors(problemSchema(), withoutDetail)).toEqual([
        "/ must have required property 'detail'",
      ]);
      expect(schemaErrors(problemSchema(), { ...notFound, status: '404' })).toEqual([
        '/status must be integer',
      ]);
    });

    it('honour OpenAPI 3.0 nullable', () => {
      expect(schemaErrors({ type: 'string', nullable: true }, null)).toEqual([]);
      expect(schemaErrors({ type: 'string' }, null)).toEqual(['/ must be string']);
    });
  });

  describe('GET /', () => {
    it('answers the documented status object', async () => {
      const res = await request(t.http).get('/');
      expect(res.status).toBe(200);
      expectDocumented(res, 'GET /');
    });
  });

  describe('POST /api/v1/sessions', () => {
    const operation = 'POST /api/v1/sessions';

    it.each([
      ['an empty body', {}],
      ['every field', { name: 'Trip', rag_document_ids: ['doc-1'] }],
    ])('answers 201 with a documented session for %s', async (_label, body) => {
      const res = await request(t.http).post('/api/v1/sessions').send(body);
      expect(res.status).toBe(201);
      expectDocumented(res, operation);
    });

    it('documents the body as optional, as the server accepts a request without one', async () => {
      const res = await request(t.http).post('/api/v1/sessions');
      expect(res.status).toBe(201);
      expect(operationOf(doc, operation).requestBody).toMatchObject({ required: false });
    });

    it('documents the body as closed, as the server refuses unknown fields', async () => {
      const res = await request(t.http).post('/api/v1/sessions').send({ llm_model_name: 'x' });
      expect(res.status).toBe(400);
      expect(bodySchemaOf(operation)).toMatchObject({
        type: 'object',
        additionalProperties: false,
      });
    });

    it('answers 400 with a documented validation problem', async () => {
      const res = await request(t.http).post('/api/v1/sessions').send({ name: '', extra: 1 });
      expect(res.status).toBe(400);
      expect(res.body.errors).toHaveLength(2);
      expectDocumented(res, operation);
    });

    it('answers 400 with a documented problem for malformed JSON', async () => {
      const res = await request(t.http)
        .post('/api/v1/sessions')
        .set('Content-Type', 'application/json')
        .send('{"name":');
      expect(res.status).toBe(400);
      expectDocumented(res, operation);
    });

    it('answers 413 with a documented problem for a body over 1 MiB', async () => {
      const res = await request(t.http)
        .post('/api/v1/sessions')
        .send({ name: 'n'.repeat(ONE_MIB) });
      expect(res.status).toBe(413);
      expectDocumented(res, operation);
    });

    it('answers 415 with a documented problem for a text/plain body', async () => {
      const res = await request(t.http)
        .post('/api/v1/sessions')
        .set('Content-Type', 'text/plain')
        .send('name=Trip');
      expect(res.status).toBe(415);
      expectDocumented(res, operation);
    });

    it.each([
      ['nulls', { name: null, rag_document_ids: null }, 201],
      ['the largest values', { name: 'n'.repeat(200), rag_document_ids: ['d'.repeat(200)] }, 201],
      ['a name of 201 characters', { name: 'n'.repeat(201) }, 400],
      ['a numeric name', { name: 42 }, 400],
      ['an empty document id', { rag_document_ids: [''] }, 400],
      ['a document id of 201 characters', { rag_document_ids: ['d'.repeat(201)] }, 400],
      [
        '101 document ids',
        { rag_document_ids: Array.from({ length: 101 }, (_, i) => `d${i}`) },
        400,
      ],
    ])('the documented body schema agrees with the server on %s', async (_label, body, status) => {
      const res = await request(t.http).post('/api/v1/sessions').send(body);
      expect({
        server: res.status,
        documentedAccepts: documentedBodyAccepts(operation, body),
      }).toEqual({ server: status, documentedAccepts: status === 201 });
    });
  });

  describe('GET /api/v1/sessions', () => {
    const operation = 'GET /api/v1/sessions';

    it('answers 200 with documented sessions and X-Total-Count', async () => {
      await createSession({ name: 'a', rag_document_ids: ['doc-1'] });
      await createSession();
      const res = await request(t.http).get('/api/v1/sessions?limit=1');
      expect({ status: res.status, total: res.headers['x-total-count'] }).toEqual({
        status: 200,
        total: '2',
      });
      expect(res.body).toHaveLength(1);
      expectDocumented(res, operation);
    });

    it('answers 400 with a documented validation problem for a bad query parameter', async () => {
      const res = await request(t.http).get('/api/v1/sessions?limit=0');
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([{ field: 'limit', message: expect.any(String) }]);
      expectDocumented(res, operation);
    });

    it('enforces exactly the documented bounds of skip and limit', async () => {
      for (const [query, status] of [
        ['skip=0', 200],
        ['skip=-1', 400],
        ['limit=1', 200],
        ['limit=0', 400],
        ['limit=1000', 200],
        ['limit=1001', 400],
      ] as const) {
        const res = await request(t.http).get(`/api/v1/sessions?${query}`);
        expect({ query, status: res.status }).toEqual({ query, status });
        expectDocumented(res, operation);
      }
    });
  });

  describe('GET /api/v1/sessions/{id}', () => {
    const operation = 'GET /api/v1/sessions/{id}';

    it('answers 200 with a documented session', async () => {
      const id = await createSession({ name: 'a' });
      const res = await request(t.http).get(`/api/v1/sessions/${id}`);
      expect(res.status).toBe(200);
      expectDocumented(res, operation);
    });

    it('answers 404 with a documented problem', async () => {
      const res = await request(t.http).get(`/api/v1/sessions/${UNKNOWN_ID}`);
      expect(res.status).toBe(404);
      expectDocumented(res, operation);
    });
  });

  describe('DELETE /api/v1/sessions/{id}', () => {
    const operation = 'DELETE /api/v1/sessions/{id}';

    it('answers 204 with no body', async () => {
      const id = await createSession();
      const res = await request(t.http).delete(`/api/v1/sessions/${id}`);
      expect(res.status).toBe(204);
      expectDocumented(res, operation);
    });

    it('answers 404 with a documented problem', async () => {
      const res = await request(t.http).delete(`/api/v1/sessions/${UNKNOWN_ID}`);
      expect(res.status).toBe(404);
      expectDocumented(res, operation);
    });
  });

  describe('POST /api/v1/sessions/{id}/messages', () => {
    const operation = 'POST /api/v1/sessions/{id}/messages';

    it.each([
      ['without metadata', { content: 'Hello' }],
      ['with metadata', { content: 'Hi', role: 'assistant', metadata: { source: 'web', n: [1] } }],
    ])('answers 201 with a documented message %s', async (_label, body) => {
      const id = await createSession();
      const res = await request(t.http).post(`/api/v1/sessions/${id}/messages`).send(body);
      expect(res.status).toBe(201);
      expectDocumented(res, operation);
    });

    it('documents the body as required, as the server refuses a request without one', async () => {
      const id = await createSession();
      const res = await request(t.http).post(`/api/v1/sessions/${id}/messages`);
      expect(res.status).toBe(400);
      expectDocumented(res, operation);
      expect(operationOf(doc, operation).requestBody).toMatchObject({ required: true });
    });

    it('documents the body as closed, as the server refuses unknown fields', async () => {
      const id = await createSession();
      const res = await request(t.http)
        .post(`/api/v1/sessions/${id}/messages`)
        .send({ content: 'Hello', session_id: UNKNOWN_ID });
      expect(res.status).toBe(400);
      expect(bodySchemaOf(operation)).toMatchObject({
        type: 'object',
        additionalProperties: false,
      });
    });

    it('answers 404 with a documented problem for an unknown session', async () => {
      const res = await request(t.http)
        .post(`/api/v1/sessions/${UNKNOWN_ID}/messages`)
        .send({ content: 'Hello' });
      expect(res.status).toBe(404);
      expectDocumented(res, operation);
    });

    it('answers 400 with a documented validation problem', async () => {
      const id = await createSession();
      const res = await request(t.http)
        .post(`/api/v1/sessions/${id}/messages`)
        .send({ content: '', role: 'robot' });
      expect(res.status).toBe(400);
      expect(res.body.errors).toHaveLength(2);
      expectDocumented(res, operation);
    });

    it('answers 413 with a documented problem for a body over 1 MiB', async () => {
      const id = await createSession();
      const res = await request(t.http)
        .post(`/api/v1/sessions/${id}/messages`)
        .send({ content: 'c'.repeat(ONE_MIB) });
      expect(res.status).toBe(413);
      expectDocumented(res, operation);
    });

    it('answers 415 with a documented problem for a text/plain body', async () => {
      const id = await createSession();
      const res = await request(t.http)
        .post(`/api/v1/sessions/${id}/messages`)
        .set('Content-Type', 'text/plain')
        .send('Hello');
      expect(res.status).toBe(415);
      expectDocumented(res, operation);
    });

    it.each([
      ['null metadata', { content: 'Hello', metadata: null }, 201],
      ['the longest content', { content: 'c'.repeat(100_000) }, 201],
      ['no content', {}, 400],
      ['empty content', { content: '' }, 400],
      ['content of 100,001 characters', { content: 'c'.repeat(100_001) }, 400],
      ['an unknown role', { content: 'Hello', role: 'robot' }, 400],
      ['a null role', { content: 'Hello', role: null }, 400],
      ['array metadata', { content: 'Hello', metadata: [1] }, 400],
    ])('the documented body schema agrees with the server on %s', async (_label, body, status) => {
      const id = await createSession();
      const res = await request(t.http).post(`/api/v1/sessions/${id}/messages`).send(body);
      expect({
        server: res.status,
        documentedAccepts: documentedBodyAccepts(operation, body),
      }).toEqual({ server: status, documentedAccepts: status === 201 });
    });
  });

  describe('POST /api/v1/sessions/{id}/fork', () => {
    const operation = 'POST /api/v1/sessions/{id}/fork';

    it('answers 201 with a documented session, and documented 400 and 404 problems', async () => {
      const id = await createSession();
      await request(t.http).post(`/api/v1/sessions/${id}/messages`).send({ content: 'one' });
      const res = await request(t.http).post(`/api/v1/sessions/${id}/fork`).send({});
      expect(res.status).toBe(201);
      expect(res.body.forked_from).toEqual({ session_id: id, message_id: expect.any(Number) });
      expectDocumented(res, operation);
      const bad = await request(t.http)
        .post(`/api/v1/sessions/${id}/fork`)
        .send({ message_id: 'x' });
      expect(bad.status).toBe(400);
      expectDocumented(bad, operation);
      const unknown = await request(t.http).post(`/api/v1/sessions/${UNKNOWN_ID}/fork`).send({});
      expect(unknown.status).toBe(404);
      expectDocumented(unknown, operation);
    });
  });

  describe('GET /api/v1/sessions/{id}/messages', () => {
    const operation = 'GET /api/v1/sessions/{id}/messages';

    it('answers 200 with documented messages and X-Total-Count', async () => {
      const id = await createSession();
      await request(t.http).post(`/api/v1/sessions/${id}/messages`).send({ content: 'one' });
      await request(t.http)
        .post(`/api/v1/sessions/${id}/messages`)
        .send({ content: 'two', role: 'assistant', metadata: { tokens: 2 } });
      const res = await request(t.http).get(`/api/v1/sessions/${id}/messages`);
      expect({ status: res.status, total: res.headers['x-total-count'] }).toEqual({
        status: 200,
        total: '2',
      });
      expect(res.body).toHaveLength(2);
      expectDocumented(res, operation);
    });

    it('answers a branch listing with documented messages carrying sibling_ids', async () => {
      const id = await createSession();
      const root = await request(t.http)
        .post(`/api/v1/sessions/${id}/messages`)
        .send({ content: 'one' });
      await request(t.http)
        .post(`/api/v1/sessions/${id}/messages`)
        .send({ content: 'two', parent_id: root.body.id });
      await request(t.http)
        .post(`/api/v1/sessions/${id}/messages`)
        .send({ content: 'two again', parent_id: root.body.id });
      const res = await request(t.http).get(`/api/v1/sessions/${id}/messages?branch=current`);
      expect(res.status).toBe(200);
      expect(res.body.map((m: { sibling_ids: number[] }) => m.sibling_ids.length)).toEqual([1, 2]);
      expectDocumented(res, operation);
      const bad = await request(t.http).get(`/api/v1/sessions/${id}/messages?branch=999999`);
      expect(bad.status).toBe(400);
      expectDocumented(bad, operation);
    });

    it('answers 404 with a documented problem for an unknown session', async () => {
      const res = await request(t.http).get(`/api/v1/sessions/${UNKNOWN_ID}/messages`);
      expect(res.status).toBe(404);
      expectDocumented(res, operation);
    });

    it('enforces exactly the documented bounds of skip and limit', async () => {
      const id = await createSession();
      for (const [query, status] of [
        ['skip=0', 200],
        ['skip=-1', 400],
        ['limit=1', 200],
        ['limit=0', 400],
        ['limit=1000', 200],
        ['limit=1001', 400],
      ] as const) {
        const res = await request(t.http).get(`/api/v1/sessions/${id}/messages?${query}`);
        expect({ query, status: res.status }).toEqual({ query, status });
        expectDocumented(res, operation);
      }
    });
  });

  describe('GET /api/v1/search', () => {
    const operation = 'GET /api/v1/search';

    it('answers 200 with documented hits (name and message hits)', async () => {
      const id = await createSession({ name: 'Lisbon trip' });
      await request(t.http).post(`/api/v1/sessions/${id}/messages`).send({ content: 'Lisbon!' });
      const res = await request(t.http).get('/api/v1/search?q=lisbon');
      expect(res.body).toHaveLength(2);
      expectDocumented(res, operation);
    });

    it('documents q as required and limit with its bounds', () => {
      const op = operationOf(doc, operation);
      expect(parameterOf(op, 'q')).toMatchObject({ in: 'query', required: true });
      expect(parameterOf(op, 'limit')).toMatchObject({
        required: false,
        schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
      });
    });

    it('answers 400 and 404 with documented problems', async () => {
      expectDocumented(await request(t.http).get('/api/v1/search'), operation);
      expectDocumented(
        await request(t.http).get(`/api/v1/search?q=x&session_id=${UNKNOWN_ID}`),
        operation,
      );
    });
  });

  describe('GET /api/v1/sessions/{id}/export and GET /api/v1/export', () => {
    it('answer with documented JSON, Markdown and NDJSON and the Content-Disposition header', async () => {
      const id = await createSession({ name: 'a' });
      await request(t.http).post(`/api/v1/sessions/${id}/messages`).send({ content: 'hi' });
      const one = 'GET /api/v1/sessions/{id}/export';
      for (const format of ['json', 'markdown']) {
        const res = await request(t.http).get(`/api/v1/sessions/${id}/export?format=${format}`);
        expect(res.status).toBe(200);
        expectDocumented(res, one);
      }
      expectDocumented(await request(t.http).get(`/api/v1/sessions/${UNKNOWN_ID}/export`), one);
      expectDocumented(await request(t.http).get(`/api/v1/sessions/${id}/export?format=x`), one);
      const all = await request(t.http)
        .get('/api/v1/export')
        .buffer(true)
        .parse((res, done) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => done(null, text));
        });
      expect(all.status).toBe(200);
      expectDocumented(Object.assign(all, { text: all.body as string }), 'GET /api/v1/export');
    });
  });

  describe('POST /api/v1/import', () => {
    const operation = 'POST /api/v1/import';

    function requestBody(): RequestBodyObject {
      return operationOf(resolved, operation).requestBody as RequestBodyObject;
    }

    it('documents a required body: JSON (an export, or an array of exports and ChatGPT conversations) or NDJSON', () => {
      expect(requestBody().required).toBe(true);
      expect(Object.keys(requestBody().content)).toEqual([
        'application/json',
        'application/x-ndjson',
      ]);
    });

    it('documents bodies the server accepts, and answers 201 with a documented result', async () => {
      const id = await createSession({ name: 'exported' });
      await request(t.http).post(`/api/v1/sessions/${id}/messages`).send({ content: 'hi' });
      const file = (await request(t.http).get(`/api/v1/sessions/${id}/export`)).body as unknown;
      const conversation = {
        title: 'Chat',
        create_time: 1714550400,
        mapping: {
          r: { id: 'r', message: null, parent: null, children: ['m'] },
          m: {
            id: 'm',
            message: {
              id: 'm',
              author: { role: 'user' },
              create_time: 1714550401,
              content: { content_type: 'text', parts: ['Hello'] },
            },
            parent: 'r',
            children: [],
          },
        },
        current_node: 'm',
        conversation_id: 'c-1',
      };
      const schema = requestBody().content['application/json'].schema as SchemaObject;
      for (const body of [file, [file], [conversation], [file, conversation]]) {
        expect(schemaErrors(schema, body)).toEqual([]);
      }
      await resetDatabase(t.db);
      const res = await request(t.http).post('/api/v1/import').send([file, conversation]);
      expect(res.status).toBe(201);
      expectDocumented(res, operation);
    });

    it('answers 400, 413 and 415 with documented problems', async () => {
      expectDocumented(await request(t.http).post('/api/v1/import').send([42]), operation);
      expectDocumented(
        await request(t.http).post('/api/v1/import').set('Content-Type', 'text/plain').send('x'),
        operation,
      );
      expectDocumented(
        await request(t.http)
          .post('/api/v1/import')
          .set('Content-Type', 'application/x-ndjson')
          .send('x'.repeat(50 * ONE_MIB + 1)),
        operation,
      );
    });
  });
});

describe('OpenAPI problem examples (e2e)', () => {
  /** Ids, counts and limits differ between the example and a real response; the wording may not. */
  function wording(body: Record<string, unknown>): Record<string, unknown> {
    const text = (value: unknown) =>
      String(value)
        .replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, 'ID')
        .replace(/\d+/g, 'N');
    const errors = body.errors as { field: string; message: string }[] | undefined;
    return {
      title: body.title,
      status: body.status,
      detail: text(body.detail),
      errors: errors?.map((e) => ({ field: text(e.field), message: text(e.message) })),
    };
  }

  function example(doc: OpenAPIObject, key: string, status: number): Record<string, unknown> {
    const response = operationOf(doc, key).responses[status] as ResponseObject | undefined;
    const media = response?.content?.['application/problem+json'];
    if (!media) throw new Error(`${key} documents no problem for ${status}`);
    return media.example as Record<string, unknown>;
  }

  describe('with the default settings', () => {
    let t: TestApp;
    let doc: OpenAPIObject;
    let id: string;

    beforeAll(async () => {
      t = await createTestApp({ AUTH_MODE: 'none', RATE_LIMIT_PER_MINUTE: '0' });
      doc = (await request(t.http).get('/docs-json')).body as OpenAPIObject;
      id = (await request(t.http).post('/api/v1/sessions').send({})).body.id as string;
    });
    afterAll(() => t.close());

    const cases: [string, number, (t: TestApp, id: string) => request.Test][] = [
      [
        'POST /api/v1/sessions',
        400,
        (t) => request(t.http).post('/api/v1/sessions').send({ name: ' ' }),
      ],
      ['GET /api/v1/sessions', 400, (t) => request(t.http).get('/api/v1/sessions?limit=0')],
      [
        'PATCH /api/v1/sessions/{id}',
        400,
        (t, id) => request(t.http).patch(`/api/v1/sessions/${id}`).send({ pinned: 'yes' }),
      ],
      [
        'POST /api/v1/sessions/{id}/messages',
        400,
        (t, id) =>
          request(t.http)
            .post(`/api/v1/sessions/${id}/messages`)
            .send({ content: '', role: 'bot' }),
      ],
      [
        'GET /api/v1/sessions/{id}/messages',
        400,
        (t, id) => request(t.http).get(`/api/v1/sessions/${id}/messages?before=999`),
      ],
      ['GET /api/v1/search', 400, (t) => request(t.http).get('/api/v1/search')],
      [
        'GET /api/v1/sessions/{id}/export',
        400,
        (t, id) => request(t.http).get(`/api/v1/sessions/${id}/export?format=pdf`),
      ],
      ['GET /api/v1/export', 400, (t) => request(t.http).get('/api/v1/export?archived=maybe')],
      ['POST /api/v1/import', 400, (t) => request(t.http).post('/api/v1/import').send([42])],
      [
        'POST /api/v1/import',
        415,
        (t) => request(t.http).post('/api/v1/import').set('Content-Type', 'text/plain').send('x'),
      ],
      [
        'POST /api/v1/sessions',
        413,
        (t) =>
          request(t.http)
            .post('/api/v1/sessions')
            .send({ name: 'n'.repeat(ONE_MIB) }),
      ],
      [
        'POST /api/v1/sessions',
        415,
        (t) => request(t.http).post('/api/v1/sessions').set('Content-Type', 'text/plain').send('x'),
      ],
      [
        'GET /api/v1/sessions/{id}',
        404,
        (t) => request(t.http).get(`/api/v1/sessions/${UNKNOWN_ID}`),
      ],
      [
        'GET /api/v1/search',
        404,
        (t) => request(t.http).get(`/api/v1/search?q=x&session_id=${UNKNOWN_ID}`),
      ],
      [
        'GET /api/v1/sessions/{id}/messages/{message_id}',
        404,
        (t, id) => request(t.http).get(`/api/v1/sessions/${id}/messages/3`),
      ],
      [
        'DELETE /api/v1/sessions/{id}/messages/{message_id}',
        404,
        (t, id) => request(t.http).delete(`/api/v1/sessions/${id}/messages/3`),
      ],
    ];

    it.each(cases)('%s: the %d example says what the server says', async (key, status, send) => {
      const res = await send(t, id);
      expect(res.status).toBe(status);
      expect(wording(res.body as Record<string, unknown>)).toEqual(
        wording(example(doc, key, status)),
      );
    });

    it('POST /api/v1/sessions: the 422 example says what the server says', async () => {
      const first = await request(t.http)
        .post('/api/v1/sessions')
        .set('Idempotency-Key', 'k')
        .send({});
      expect(first.status).toBe(201);
      const res = await request(t.http)
        .post('/api/v1/sessions')
        .set('Idempotency-Key', 'k')
        .send({ name: 'other' });
      expect(res.status).toBe(422);
      expect(wording(res.body as Record<string, unknown>)).toEqual(
        wording(example(doc, 'POST /api/v1/sessions', 422)),
      );
    });

    it('the 409 example says what the server says', () => {
      expect(example(doc, 'POST /api/v1/sessions', 409).detail).toBe(inFlight().message);
    });
  });

  describe('with API keys and a rate limit', () => {
    let t: TestApp;
    let doc: OpenAPIObject;

    beforeAll(async () => {
      t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '1' });
      doc = (await request(t.http).get('/docs-json')).body as OpenAPIObject;
    });
    afterAll(() => t.close());

    it('the 401 example says what the server says', async () => {
      const res = await request(t.http).get('/api/v1/sessions');
      expect(res.status).toBe(401);
      expect(wording(res.body as Record<string, unknown>)).toEqual(
        wording(example(doc, 'GET /api/v1/sessions', 401)),
      );
    });

    it('the 429 example says what the server says', async () => {
      let res = await request(t.http).get('/');
      for (let i = 0; i < 3 && res.status !== 429; i++) res = await request(t.http).get('/');
      expect(res.status).toBe(429);
      expect(wording(res.body as Record<string, unknown>)).toEqual(
        wording({ ...example(doc, 'GET /api/v1/sessions', 429), instance: '/' }),
      );
    });
  });
});
