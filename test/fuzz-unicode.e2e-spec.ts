import fc from 'fast-check';
import request from 'supertest';
import { CONTENT_MAX_LENGTH } from '../src/messages/dto/chat-message.dto';
import { indexedText } from '../src/search/search-text';
import { MARKER, expandingText, withMarker } from './helpers/arbitraries';
import { onPostgres } from './helpers/database-target';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

/**
 * Property-based fuzzing of the search index with text that grows when folded: compatibility
 * decomposition (NFKD) and case folding expand these characters up to 18 times, which once pushed
 * PostgreSQL's tsvector over its 1 MiB limit (a 500 on POST). For every generated message and
 * session name, up to the length limits:
 * - the POST answers 201 with the text exactly as sent;
 * - a word of the indexed part is found by search (all of the text on SQLite; on PostgreSQL the
 *   first 200,000 code points of its folded form), and a word past it is not.
 * Seeded and bounded: FUZZ_RUNS cases for names (default 200), a fifth as many 100,000-character
 * messages; FUZZ_SEED to replay another run.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_124);

jest.setTimeout(Math.max(60_000, RUNS * 1000));

/** Whether search should find the marker: always on SQLite, within the indexed part on PostgreSQL. */
function markerIndexed(text: string): boolean {
  return !onPostgres || new RegExp(`(^|\\s)${MARKER}(\\s|$)`).test(indexedText(text));
}

describe('Fuzzing the search index with expanding Unicode (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  async function searchIds(): Promise<[string, number | null][]> {
    const res = await request(t.http).get('/api/v1/search').query({ q: MARKER });
    expect(res.status).toBe(200);
    return (res.body as { session: { id: string }; message: { id: number } | null }[]).map(
      (hit) => [hit.session.id, hit.message?.id ?? null],
    );
  }

  it('stores and finds messages of expanding characters up to 100,000 characters', async () => {
    const lengths = fc.oneof(
      fc.integer({ min: 1, max: 200 }),
      fc.integer({ min: CONTENT_MAX_LENGTH - 1000, max: CONTENT_MAX_LENGTH }),
      fc.integer({ min: 1, max: CONTENT_MAX_LENGTH }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer(),
        lengths,
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (seed, length, at) => {
          await resetDatabase(t.db);
          const content = withMarker(expandingText(seed, length), at, length);
          const session = await request(t.http).post('/api/v1/sessions').send({});
          const res = await request(t.http)
            .post(`/api/v1/sessions/${session.body.id}/messages`)
            .send({ content });
          expect({ status: res.status, content: res.body.content }).toEqual({
            status: 201,
            content,
          });
          await expect(searchIds()).resolves.toEqual(
            markerIndexed(content) ? [[session.body.id, res.body.id]] : [],
          );
        },
      ),
      { numRuns: Math.ceil(RUNS / 5), seed: SEED },
    );
  });

  it('stores and finds session names of expanding characters up to 200 characters', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer(),
        fc.integer({ min: MARKER.length + 2, max: 200 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (seed, length, at) => {
          await resetDatabase(t.db);
          const name = withMarker(expandingText(seed, length), at, length);
          const res = await request(t.http).post('/api/v1/sessions').send({ name });
          expect({ status: res.status, name: res.body.name }).toEqual({
            status: 201,
            name: name.trim(),
          });
          await expect(searchIds()).resolves.toEqual([[res.body.id, null]]);
        },
      ),
      { numRuns: RUNS, seed: SEED },
    );
  });
});
