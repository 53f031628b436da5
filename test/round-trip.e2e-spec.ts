import request from 'supertest';
import { jsonDepth } from '../src/common/fields/json-bounds';
import { rawText } from './helpers/api';
import { freshDatabaseUrl } from './helpers/database-target';
import { createTestApp, TestApp } from './helpers/test-app';

async function exportAll(t: TestApp): Promise<string> {
  const res = await rawText(request(t.http).get('/api/v1/export?archived=any'));
  expect(res.status).toBe(200);
  return res.body as string;
}

/**
 * Export everything, import it into an empty database, export again: the same bytes. Covers the
 * awkward values (Unicode, escapes, nested metadata, null and empty fields, archived and pinned
 * sessions, gaps left by deleted messages, a history longer than an export page).
 */
describe('Export → import round trip (e2e)', () => {
  // Seeding 1,100 appends to one session takes a few seconds on PostgreSQL (one row lock).
  jest.setTimeout(60_000);
  let source: TestApp;
  let original: string;
  const ids: string[] = [];

  beforeAll(async () => {
    source = await createTestApp({ DATABASE_URL: await freshDatabaseUrl('round-trip-source') });
    const post = async (path: string, body: object) => {
      const res = await request(source.http).post(path).send(body);
      expect(res.status).toBe(201);
      return res.body as { id: string };
    };
    const trip = await post('/api/v1/sessions', {
      name: 'Trip ✈️ to Lisbon — "quotes", \\backslashes\\ and\nnewlines',
      rag_document_ids: ['doc-1', 'doc/2 ü'],
      metadata_tags: { project: 'travel', 'ключ with spaces': 'значение ✓', empty: '' },
      pinned: true,
    });
    const messages = `/api/v1/sessions/${trip.id}/messages`;
    await post(messages, { content: 'Where should we go in May? 🌍' });
    const gone = await post(messages, { content: 'a message deleted later' });
    await post(messages, {
      content: 'مرحبا — 東京 — शुभ प्रभात\r\n\ttabs and trailing spaces   ',
      role: 'assistant',
      metadata: {
        model: 'gpt-x',
        numbers: [0, -1, 1.5, 1e21, 2 ** 53 + 2, -1.25e-300],
        flags: { yes: true, no: false, nothing: null },
        nested: { a: { b: { c: { d: ['deep'] } } } },
        'unicode ключ': 'значение',
        escapes: 'quote " backslash \\ newline \n tab \t nul \u0000 line sep \u2028',
      },
    });
    await post(messages, { content: 'You are a helpful assistant.', role: 'system' });
    expect((await request(source.http).delete(`${messages}/${gone.id}`)).status).toBe(204);

    const archived = await post('/api/v1/sessions', { archived: true });
    const empty = await post('/api/v1/sessions', { name: 'No messages yet' });
    const long = await post('/api/v1/sessions', { name: 'A long history' });
    for (let i = 0; i < 1100; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) =>
          post(`/api/v1/sessions/${long.id}/messages`, {
            content: `line ${i + j}`,
            role: (i + j) % 2 ? 'assistant' : 'user',
          }),
        ),
      );
    }
    await request(source.http)
      .patch(`/api/v1/sessions/${empty.id}`)
      .send({ metadata_tags: { renamed: 'no' }, name: 'Still no messages' });
    ids.push(trip.id, archived.id, empty.id, long.id);
    original = await exportAll(source);
  });
  afterAll(() => source.close());

  it('exports what the store holds', () => {
    const lines = original.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(
      lines.map((line) => (JSON.parse(line) as { session: { id: string } }).session.id),
    ).toEqual([...ids].sort());
  });

  it.each([
    ['NDJSON (the bulk export)', 'application/x-ndjson', (ndjson: string) => ndjson],
    [
      'a JSON array of single-session exports',
      'application/json',
      (ndjson: string) => `[${ndjson.trimEnd().split('\n').join(',')}]`,
    ],
  ])('imports %s into an empty database and exports the same bytes', async (_label, type, body) => {
    const target = await createTestApp({ DATABASE_URL: await freshDatabaseUrl('round-trip') });
    try {
      const res = await request(target.http)
        .post('/api/v1/import')
        .set('Content-Type', type)
        .send(body(original));
      expect({ status: res.status, body: res.body }).toEqual({
        status: 201,
        body: {
          imported: 4,
          skipped: 0,
          sessions: [...ids].sort(),
          message_ids: 'kept',
          renumbered_sessions: [],
        },
      });
      expect(await exportAll(target)).toBe(original);
      for (const id of ids) {
        for (const format of ['json', 'markdown']) {
          const path = `/api/v1/sessions/${id}/export?format=${format}`;
          const [a, b] = await Promise.all([
            rawText(request(source.http).get(path)),
            rawText(request(target.http).get(path)),
          ]);
          expect(b.body).toBe(a.body);
        }
      }
      const [a, b] = await Promise.all(
        [source, target].map((t) =>
          request(t.http).get('/api/v1/search').query({ q: 'lisbon', archived: 'any' }),
        ),
      );
      expect(b.body).toEqual(a.body);

      // The imported store carries on: new ids above the imported ones, new times after the old.
      const highest = Math.max(
        ...original
          .trimEnd()
          .split('\n')
          .flatMap((line) => (JSON.parse(line).messages as { id: number }[]).map((m) => m.id)),
      );
      const next = await request(target.http)
        .post(`/api/v1/sessions/${ids[0]}/messages`)
        .send({ content: 'back home' });
      const before = JSON.parse(original.split('\n').find((l) => l.includes(ids[0]))!).session;
      expect(next.body.id).toBeGreaterThan(highest);
      expect(next.body.timestamp > before.last_updated_at).toBe(true);
      // Importing the export again into the same store creates nothing.
      const again = await request(target.http)
        .post('/api/v1/import')
        .set('Content-Type', type)
        .send(body(original));
      expect(again.body).toMatchObject({ imported: 0, skipped: 4 });
    } finally {
      await target.close();
    }
  });

  it("round-trips data at every field's limit, through the API and back", async () => {
    // The longest model name there may be comes from the configuration.
    const model = `m${'😀'.repeat(199)}`;
    const edge = await createTestApp({
      DATABASE_URL: await freshDatabaseUrl('round-trip-limits'),
      DEFAULT_MODEL_NAME: model,
    });
    const target = await createTestApp({
      DATABASE_URL: await freshDatabaseUrl('round-trip-limits'),
    });
    try {
      // Characters of every width (astral ones count once), at the top of each range.
      const wide = (n: number) =>
        Array.from({ length: n }, (_, i) => ['é', '東', '😀'][i % 3]).join('');
      // With the object around it: 16 levels deep.
      let depth16: Record<string, unknown> = { leaf: '\u0000 \ud800 escapes ok in JSON' };
      for (let i = 1; i < 15; i++) depth16 = { [`level${i}`]: depth16 };
      const metadata = { depth16, pad: '' };
      // Exactly 16 KiB serialized.
      metadata.pad = 'p'.repeat(16 * 1024 - Buffer.byteLength(JSON.stringify(metadata)));
      expect(Buffer.byteLength(JSON.stringify(metadata))).toBe(16 * 1024);
      expect(jsonDepth(metadata)).toBe(16);
      const session = await request(edge.http)
        .post('/api/v1/sessions')
        .send({
          name: wide(200),
          rag_document_ids: Array.from(
            { length: 100 },
            (_, i) => `${i}${'😀'.repeat(200 - String(i).length)}`,
          ),
          metadata_tags: Object.fromEntries(
            Array.from({ length: 16 }, (_, i) => [`${i}`.padEnd(64, 'k'), wide(512)]),
          ),
          pinned: true,
        });
      expect({ status: session.status, errors: session.body.errors }).toEqual({
        status: 201,
        errors: undefined,
      });
      for (const body of [
        { content: wide(100_000), role: 'system', metadata },
        { content: 'x', metadata: {} },
      ]) {
        const res = await request(edge.http)
          .post(`/api/v1/sessions/${session.body.id}/messages`)
          .send(body);
        expect({ status: res.status, errors: res.body.errors }).toEqual({
          status: 201,
          errors: undefined,
        });
      }
      const original = await exportAll(edge);
      const res = await request(target.http)
        .post('/api/v1/import')
        .set('Content-Type', 'application/x-ndjson')
        .send(original);
      expect({ status: res.status, body: res.body }).toEqual({
        status: 201,
        body: {
          imported: 1,
          skipped: 0,
          sessions: [session.body.id],
          message_ids: 'kept',
          renumbered_sessions: [],
        },
      });
      expect(await exportAll(target)).toBe(original);
    } finally {
      await edge.close();
      await target.close();
    }
  });
});
