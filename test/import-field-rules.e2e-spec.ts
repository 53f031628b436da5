import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { validateEnv } from '../src/config/env.validation';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

/**
 * The import checks an export's fields with the API's own DTOs, so it must refuse exactly what
 * `POST /api/v1/sessions` and `POST …/messages` refuse, and store what they store. Each row gives one
 * field a value (as raw JSON text: `1e400` has no JavaScript literal that serializes to it) and what
 * both must do with it; the POST and the import must agree, and name the field when they refuse.
 */

type Verdict = 'accepts' | 'refuses';
/** One hostile (or borderline) value of one field, as JSON text. */
type Row = [label: string, field: string, json: string, verdict: Verdict];

const j = (value: unknown) => JSON.stringify(value);
const nested = (levels: number) => `${'{"a":'.repeat(levels - 1)}{}${'}'.repeat(levels - 1)}`;
const tags = (count: number) =>
  j(Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 'v'])));

const SESSION_ROWS: Row[] = [
  ['name with NUL', 'name', j('a\u0000b'), 'refuses'],
  ['name with a lone high surrogate', 'name', j('a\ud800b'), 'refuses'],
  ['name with a lone low surrogate', 'name', j('\udc00'), 'refuses'],
  ['name of 201 characters', 'name', j('n'.repeat(201)), 'refuses'],
  ['name of 200 characters', 'name', j('n'.repeat(200)), 'accepts'],
  ['name of 200 astral characters (400 UTF-16 units)', 'name', j('😀'.repeat(200)), 'accepts'],
  ['name of only spaces', 'name', j('   '), 'refuses'],
  ['name padded with spaces', 'name', j('  Trip  '), 'accepts'],
  ['name that is a number', 'name', '42', 'refuses'],
  ['17 tags', 'metadata_tags', tags(17), 'refuses'],
  ['16 tags', 'metadata_tags', tags(16), 'accepts'],
  ['a tag key of 65 characters', 'metadata_tags', j({ ['k'.repeat(65)]: 'v' }), 'refuses'],
  ['an empty tag key', 'metadata_tags', j({ '': 'v' }), 'refuses'],
  ['a tag value of 513 characters', 'metadata_tags', j({ k: 'v'.repeat(513) }), 'refuses'],
  ['a tag value of 512 characters', 'metadata_tags', j({ k: 'v'.repeat(512) }), 'accepts'],
  ['a tag value that is a number', 'metadata_tags', j({ k: 1 }), 'refuses'],
  ['a tag value that is an object', 'metadata_tags', j({ k: { a: 'b' } }), 'refuses'],
  ['tags as an array', 'metadata_tags', j(['a']), 'refuses'],
  ['a tag value with NUL (JSON escapes it)', 'metadata_tags', j({ k: 'a\u0000' }), 'accepts'],
  ['101 rag ids', 'rag_document_ids', j(Array.from({ length: 101 }, (_, i) => `d${i}`)), 'refuses'],
  ['100 rag ids', 'rag_document_ids', j(Array.from({ length: 100 }, (_, i) => `d${i}`)), 'accepts'],
  ['an empty rag id', 'rag_document_ids', j(['']), 'refuses'],
  ['a rag id of 201 characters', 'rag_document_ids', j(['d'.repeat(201)]), 'refuses'],
  ['a rag id with NUL', 'rag_document_ids', j(['d\u0000']), 'refuses'],
  ['a rag id with a lone surrogate', 'rag_document_ids', j(['d\udfff']), 'refuses'],
  ['a rag id that is a number', 'rag_document_ids', j([7]), 'refuses'],
  ['rag ids as a string', 'rag_document_ids', j('doc-1'), 'refuses'],
  ['archived as a string', 'archived', j('yes'), 'refuses'],
  ['pinned as null', 'pinned', 'null', 'refuses'],
];

const MESSAGE_ROWS: Row[] = [
  ['content with NUL', 'content', j('a\u0000b'), 'refuses'],
  ['content with a lone high surrogate', 'content', j('end\ud83d'), 'refuses'],
  ['content with a lone low surrogate', 'content', j('\ude00start'), 'refuses'],
  ['content of 100,001 characters', 'content', j('c'.repeat(100_001)), 'refuses'],
  ['content of 100,000 characters', 'content', j('c'.repeat(100_000)), 'accepts'],
  ['empty content', 'content', j(''), 'refuses'],
  ['content of only whitespace (kept verbatim)', 'content', j(' \n\t '), 'accepts'],
  ['content that is an object', 'content', j({ text: 'x' }), 'refuses'],
  ['an unknown role', 'role', j('robot'), 'refuses'],
  ['metadata 17 levels deep', 'metadata', nested(17), 'refuses'],
  ['metadata 16 levels deep', 'metadata', nested(16), 'accepts'],
  // Deeper than a POST body may nest (32) but not an import file (64): both still refuse it.
  ['metadata 40 levels deep', 'metadata', nested(40), 'refuses'],
  // Deeper than an import file may nest too: both refuse before any DTO sees it.
  ['metadata 70 levels deep', 'metadata', nested(70), 'refuses'],
  ['metadata over 16 KiB', 'metadata', j({ blob: 'm'.repeat(16 * 1024) }), 'refuses'],
  ['metadata of exactly 16 KiB', 'metadata', j({ blob: 'm'.repeat(16 * 1024 - 11) }), 'accepts'],
  ['metadata holding 1e400', 'metadata', '{"n":1e400}', 'refuses'],
  ['metadata holding -1e400 in an array', 'metadata', '{"a":[1,-1e400]}', 'refuses'],
  ['metadata holding the largest double', 'metadata', '{"n":1.7976931348623157e308}', 'accepts'],
  ['metadata as an array', 'metadata', '[1]', 'refuses'],
  ['metadata as a string', 'metadata', j('x'), 'refuses'],
  ['metadata holding NUL and a lone surrogate', 'metadata', j({ t: '\u0000\ud800' }), 'accepts'],
  ['null metadata', 'metadata', 'null', 'accepts'],
];

/** The model name is the server's (DEFAULT_MODEL_NAME); an import restores it under the same rule. */
const MODEL_ROWS: [label: string, name: string, verdict: Verdict][] = [
  ['with NUL', 'gpt\u0000x', 'refuses'],
  ['with a lone surrogate', 'gpt\ud800', 'refuses'],
  ['of 201 characters', 'g'.repeat(201), 'refuses'],
  ['of 200 characters', 'g'.repeat(200), 'accepts'],
  ['of 200 astral characters', '🤖'.repeat(200), 'accepts'],
];

/** Stands for the row's value in an object, until `withRaw` puts the raw JSON text in its place. */
const RAW = '__raw_value__';

/** JSON text of `value` with the `RAW` placeholder replaced by raw JSON text. */
function withRaw(value: unknown, json: string): string {
  const text = JSON.stringify(value);
  const placeholder = JSON.stringify(RAW);
  const at = text.indexOf(placeholder);
  if (at === -1) throw new Error('placeholder missing');
  return `${text.slice(0, at)}${json}${text.slice(at + placeholder.length)}`;
}

function exportObject(
  id: string,
  session: Record<string, unknown>,
  message?: Record<string, unknown>,
): Record<string, unknown> {
  return {
    session: {
      id,
      name: 'Imported',
      created_at: '2025-01-01T10:00:00.000Z',
      last_updated_at: '2025-01-01T10:05:00.000Z',
      llm_model_name: 'gpt-x',
      rag_document_ids: null,
      metadata_tags: null,
      message_count: message ? 1 : 0,
      archived: false,
      pinned: false,
      ...session,
    },
    messages: message
      ? [{ timestamp: '2025-01-01T10:01:00.000Z', role: 'user', content: 'hello', ...message }]
      : [],
  };
}

/** The fields a 400 names, or null for a 2xx. */
function outcome(res: request.Response): { status: number; fields: string[] | null } {
  if (res.status >= 200 && res.status < 300) return { status: res.status, fields: null };
  const errors = (res.body?.errors ?? []) as { field: string }[];
  return { status: res.status, fields: errors.map((e) => e.field) };
}

/** True when `name` is `field` or a place inside it (`metadata.a.a`, `rag_document_ids[3]`). */
const names = (name: string, field: string) =>
  name === field || name.startsWith(`${field}.`) || name.startsWith(`${field}[`);

describe('Import refuses exactly what POST refuses (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });

  afterAll(async () => {
    await t.close();
  });

  beforeEach(async () => {
    await resetDatabase(t.db);
  });

  async function post(path: string, body: string) {
    return request(t.http).post(path).set('Content-Type', 'application/json').send(body);
  }

  async function rows(): Promise<[number, number]> {
    return [await countRows(t.db, 'sessions'), await countRows(t.db, 'chat_messages')];
  }

  /** Both answers agree with the verdict; a refusal names the field in both and stores nothing. */
  async function expectAgreement(
    verdict: Verdict,
    api: request.Response,
    apiField: string,
    imported: request.Response,
    importField: string,
    rowsBefore: [number, number],
  ): Promise<void> {
    const a = outcome(api);
    const i = outcome(imported);
    if (verdict === 'accepts') {
      expect({ api: a.status, import: i.status }).toEqual({ api: 201, import: 201 });
      expect(imported.body).toMatchObject({ imported: 1, skipped: 0 });
      return;
    }
    expect({ api: a.status, import: i.status }).toEqual({ api: 400, import: 400 });
    expect({ api: a.fields?.some((f) => names(f, apiField)) }).toEqual({ api: true });
    expect({ import: i.fields?.some((f) => names(f, importField)) }).toEqual({ import: true });
    await expect(rows()).resolves.toEqual(rowsBefore);
  }

  describe('session fields: POST /api/v1/sessions and an imported session', () => {
    it.each(SESSION_ROWS)('%s', async (_label, field, json, verdict) => {
      const api = await post('/api/v1/sessions', withRaw({ [field]: RAW }, json));
      if (api.status === 201) await resetDatabase(t.db);
      const id = randomUUID();
      const imported = await post(
        '/api/v1/import',
        withRaw(exportObject(id, { [field]: RAW }), json),
      );
      await expectAgreement(verdict, api, field, imported, `session.${field}`, [0, 0]);
      if (verdict === 'accepts') {
        // Both store the same value (the name trimmed by both).
        const restored = await request(t.http).get(`/api/v1/sessions/${id}`);
        expect(restored.body[field]).toEqual(api.body[field]);
      }
    });
  });

  describe('message fields: POST …/messages and an imported message', () => {
    it.each(MESSAGE_ROWS)('%s', async (_label, field, json, verdict) => {
      const session = await request(t.http).post('/api/v1/sessions').send({});
      const base = field === 'content' ? {} : { content: 'hello' };
      const api = await post(
        `/api/v1/sessions/${session.body.id}/messages`,
        withRaw({ ...base, [field]: RAW }, json),
      );
      await request(t.http).delete(`/api/v1/sessions/${session.body.id}`).expect(204);
      const id = randomUUID();
      const imported = await post(
        '/api/v1/import',
        withRaw(exportObject(id, {}, { [field]: RAW }), json),
      );
      await expectAgreement(verdict, api, field, imported, `messages[0].${field}`, [0, 0]);
      if (verdict === 'accepts') {
        const restored = await request(t.http).get(`/api/v1/sessions/${id}/messages`);
        expect(restored.body).toHaveLength(1);
        expect(restored.body[0][field]).toEqual(api.body[field]);
      }
    });
  });

  describe('llm_model_name: the rule DEFAULT_MODEL_NAME is held to, and no client may set it', () => {
    it.each(MODEL_ROWS)('a model name %s', async (_label, name, verdict) => {
      const api = await post('/api/v1/sessions', j({ llm_model_name: name }));
      expect({ status: api.status, fields: outcome(api).fields }).toEqual({
        status: 400,
        fields: ['llm_model_name'],
      });
      const configured = (() => {
        try {
          validateEnv({ DEFAULT_MODEL_NAME: name });
          return 'accepts';
        } catch (error) {
          expect((error as Error).message).toMatch(/^Invalid configuration: DEFAULT_MODEL_NAME /);
          return 'refuses';
        }
      })();
      const id = randomUUID();
      const imported = await post('/api/v1/import', j(exportObject(id, { llm_model_name: name })));
      expect({ configured, imported: imported.status }).toEqual({
        configured: verdict,
        imported: verdict === 'accepts' ? 201 : 400,
      });
      if (verdict === 'refuses') {
        expect(outcome(imported).fields).toEqual(['session.llm_model_name']);
        await expect(rows()).resolves.toEqual([0, 0]);
      } else {
        const restored = await request(t.http).get(`/api/v1/sessions/${id}`);
        expect(restored.body.llm_model_name).toBe(name);
      }
    });
  });
});
