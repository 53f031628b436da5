import request, { Response } from 'supertest';
import { CursorService } from '../src/database/cursor.service';
import {
  badRequest,
  MessageBody,
  messagesOf,
  SessionBody,
  SESSIONS,
  spreadActivity,
  UNKNOWN_ID,
} from './helpers/api';
import { freshDatabaseUrl } from './helpers/database-target';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const idsOf = (items: { id: number | string }[]) => items.map((item) => item.id);

/** The 400 problem document naming `field`. */
const badField = (instance: string, field: string) =>
  badRequest(instance, [{ field, message: expect.any(String) }]);

/** The target of `Link: <…>; rel="next"`, checked to be a path + query relative to the server root. */
function nextLink(res: Response): string | undefined {
  const header = res.headers.link as string | undefined;
  if (header === undefined) return undefined;
  expect(header).toMatch(/^<\/api\/v1\/[^>\s]*\?[^>\s]+>; rel="next"$/);
  return /^<([^>]+)>/.exec(header)![1];
}

function queryOf(link: string): Record<string, string> {
  return Object.fromEntries(new URL(link, 'http://server.invalid').searchParams);
}

/**
 * The contract's model of a message page: the list in `order`, strictly after `after` and strictly
 * before `before`; with `before` alone, the `limit` items nearest to it, still in list order.
 */
function expectedPage<T extends { id: number }>(
  ascending: T[],
  query: { after?: number; before?: number; order: 'asc' | 'desc'; limit: number },
): T[] {
  const list = query.order === 'asc' ? ascending : [...ascending].reverse();
  const position = (id: number) => list.findIndex((m) => m.id === id);
  const from = query.after === undefined ? 0 : position(query.after) + 1;
  const to = query.before === undefined ? list.length : position(query.before);
  const between = list.slice(from, Math.max(from, to));
  return query.before !== undefined && query.after === undefined
    ? between.slice(Math.max(0, between.length - query.limit))
    : between.slice(0, query.limit);
}

/** Flips one character of `text` at `index` to another base64url character. */
function flip(text: string, index: number): string {
  const replacement = BASE64URL[BASE64URL.indexOf(text[index]) ^ 1];
  return `${text.slice(0, index)}${replacement}${text.slice(index + 1)}`;
}

describe('Pagination and cursors (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());
  beforeEach(() => resetDatabase(t.db));

  async function createSession(body: object = {}): Promise<string> {
    const res = await request(t.http).post(SESSIONS).send(body);
    expect(res.status).toBe(201);
    return res.body.id as string;
  }

  async function append(sessionId: string, n: number, prefix = 'm'): Promise<MessageBody[]> {
    const messages: MessageBody[] = [];
    for (let i = 0; i < n; i++) {
      const res = await request(t.http)
        .post(messagesOf(sessionId))
        .send({ content: `${prefix}${i}` });
      expect(res.status).toBe(201);
      messages.push(res.body as MessageBody);
    }
    return messages;
  }

  async function get(url: string): Promise<Response> {
    const res = await request(t.http).get(url);
    expect({ url, status: res.status }).toEqual({ url, status: 200 });
    return res;
  }

  /**
   * Follows `next` from `first` until it disappears, checking on every page that the link is there
   * exactly when the page is full. `between` runs after each page, to change data mid-walk.
   */
  async function walk<T>(
    first: string,
    between?: (page: T[], pageNumber: number) => Promise<void>,
  ): Promise<{ items: T[]; pages: T[][]; totals: string[]; links: string[] }> {
    const pages: T[][] = [];
    const totals: string[] = [];
    const links: string[] = [];
    let url: string | undefined = first;
    while (url !== undefined) {
      const res = await get(url);
      const page = res.body as T[];
      pages.push(page);
      totals.push(res.headers['x-total-count']);
      const link = nextLink(res);
      const limit = Number(queryOf(url).limit);
      expect({ url, hasNext: link !== undefined }).toEqual({ url, hasNext: page.length === limit });
      if (link !== undefined) links.push(link);
      url = link;
      if (between) await between(page, pages.length);
      if (pages.length > 200) throw new Error(`the walk from ${first} does not end`);
    }
    return { items: pages.flat(), pages, totals, links };
  }

  async function createSessions(n: number, body: (i: number) => object = () => ({})) {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(await createSession(body(i)));
    await spreadActivity(t.db, ids);
    return ids;
  }

  async function allSessions(query = 'archived=any'): Promise<SessionBody[]> {
    return (await get(`${SESSIONS}?limit=1000&${query}`)).body as SessionBody[];
  }

  describe('GET /api/v1/sessions/:id/messages?after=…&before=…&order=…', () => {
    let sessionId: string;
    let otherId: string;
    let m: MessageBody[];

    beforeEach(async () => {
      sessionId = await createSession();
      otherId = await createSession();
      m = await append(sessionId, 10);
    });

    it('after: only the messages strictly after the cursor, oldest first', async () => {
      const res = await get(`${messagesOf(sessionId)}?after=${m[3].id}`);
      expect({ body: res.body, total: res.headers['x-total-count'] }).toEqual({
        body: m.slice(4),
        total: '10',
      });
      const page = await get(`${messagesOf(sessionId)}?after=${m[3].id}&limit=2`);
      expect(page.body).toEqual(m.slice(4, 6));
      const end = await get(`${messagesOf(sessionId)}?after=${m[9].id}`);
      expect({
        body: end.body,
        total: end.headers['x-total-count'],
        link: end.headers.link,
      }).toEqual({ body: [], total: '10', link: undefined });
    });

    it('before: the limit messages nearest to the cursor, still oldest first', async () => {
      const near = await get(`${messagesOf(sessionId)}?before=${m[7].id}&limit=3`);
      expect({ body: near.body, total: near.headers['x-total-count'] }).toEqual({
        body: m.slice(4, 7),
        total: '10',
      });
      const all = await get(`${messagesOf(sessionId)}?before=${m[7].id}`);
      expect(all.body).toEqual(m.slice(0, 7));
      const start = await get(`${messagesOf(sessionId)}?before=${m[0].id}`);
      expect(start.body).toEqual([]);
      const short = await get(`${messagesOf(sessionId)}?before=${m[2].id}&limit=5`);
      expect(short.body).toEqual(m.slice(0, 2));
    });

    it('after and before together: the messages between them', async () => {
      const res = await get(`${messagesOf(sessionId)}?after=${m[1].id}&before=${m[8].id}`);
      expect(res.body).toEqual(m.slice(2, 8));
      const page = await get(`${messagesOf(sessionId)}?after=${m[1].id}&before=${m[8].id}&limit=4`);
      expect(page.body).toEqual(m.slice(2, 6));
      const adjacent = await get(`${messagesOf(sessionId)}?after=${m[4].id}&before=${m[5].id}`);
      expect(adjacent.body).toEqual([]);
      const crossed = await get(`${messagesOf(sessionId)}?after=${m[6].id}&before=${m[2].id}`);
      expect(crossed.body).toEqual([]);
    });

    it('order=desc lists newest first; after/before follow that order', async () => {
      const desc = [...m].reverse();
      const all = await get(`${messagesOf(sessionId)}?order=desc`);
      expect({ body: all.body, total: all.headers['x-total-count'] }).toEqual({
        body: desc,
        total: '10',
      });
      const after = await get(`${messagesOf(sessionId)}?order=desc&after=${m[6].id}&limit=3`);
      expect(after.body).toEqual([m[5], m[4], m[3]]);
      const before = await get(`${messagesOf(sessionId)}?order=desc&before=${m[2].id}&limit=3`);
      expect(before.body).toEqual([m[5], m[4], m[3]]);
      const between = await get(
        `${messagesOf(sessionId)}?order=desc&after=${m[8].id}&before=${m[4].id}`,
      );
      expect(between.body).toEqual([m[7], m[6], m[5]]);
      const asc = await get(`${messagesOf(sessionId)}?order=asc&after=${m[8].id}`);
      expect(asc.body).toEqual([m[9]]);
    });

    it('agrees with the contract for every combination of after, before, order and limit', async () => {
      const cursors = [undefined, ...m.map((x) => x.id)];
      const mismatches: string[] = [];
      for (const order of ['asc', 'desc'] as const) {
        for (const limit of [1, 3, 1000]) {
          for (const after of cursors) {
            for (const before of cursors) {
              const query = new URLSearchParams({ order, limit: String(limit) });
              if (after !== undefined) query.set('after', String(after));
              if (before !== undefined) query.set('before', String(before));
              const res = await get(`${messagesOf(sessionId)}?${query.toString()}`);
              const expected = idsOf(expectedPage(m, { after, before, order, limit }));
              if (JSON.stringify(idsOf(res.body)) !== JSON.stringify(expected)) {
                mismatches.push(`${query.toString()}: ${JSON.stringify(idsOf(res.body))}`);
              }
            }
          }
        }
      }
      expect(mismatches).toEqual([]);
    });

    it.each(['after', 'before'])(
      'answers 400 naming %s for a message of another session',
      async (param) => {
        const [foreign] = await append(otherId, 1);
        const res = await request(t.http).get(`${messagesOf(sessionId)}?${param}=${foreign.id}`);
        expect({ status: res.status, body: res.body }).toEqual({
          status: 400,
          body: badField(messagesOf(sessionId), param),
        });
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      },
    );

    it.each(['after', 'before'])('answers 400 naming %s for a deleted message', async (param) => {
      await request(t.http)
        .delete(`${messagesOf(sessionId)}/${m[4].id}`)
        .expect(204);
      const res = await request(t.http).get(`${messagesOf(sessionId)}?${param}=${m[4].id}`);
      expect({ status: res.status, body: res.body }).toEqual({
        status: 400,
        body: badField(messagesOf(sessionId), param),
      });
    });

    it.each(
      ['after', 'before'].flatMap((param) =>
        [
          '999999',
          '0',
          '-1',
          'abc',
          '1.5',
          '',
          '1e2',
          '0x10',
          ' 1',
          '9999999999999999',
          '99999999999999999999',
        ].map((value) => [param, value]),
      ),
    )('answers 400 naming %s for %j', async (param, value) => {
      const res = await request(t.http).get(
        `${messagesOf(sessionId)}?${param}=${encodeURIComponent(value)}`,
      );
      expect({ status: res.status, body: res.body }).toEqual({
        status: 400,
        body: badField(messagesOf(sessionId), param),
      });
    });

    it('answers 400 for a repeated cursor parameter', async () => {
      const res = await request(t.http).get(
        `${messagesOf(sessionId)}?after=${m[1].id}&after=${m[2].id}`,
      );
      expect({ status: res.status, body: res.body }).toEqual({
        status: 400,
        body: badField(messagesOf(sessionId), 'after'),
      });
    });

    it.each(['skip=0&after=', 'skip=2&after=', 'skip=0&before=', 'skip=1&before='])(
      'answers 400 naming skip for %s…',
      async (query) => {
        const res = await request(t.http).get(`${messagesOf(sessionId)}?${query}${m[5].id}`);
        expect({ status: res.status, body: res.body }).toEqual({
          status: 400,
          body: badField(messagesOf(sessionId), 'skip'),
        });
      },
    );

    it.each(['ASC', 'descending', '', 'asc,desc'])(
      'answers 400 naming order for %j',
      async (order) => {
        const res = await request(t.http).get(`${messagesOf(sessionId)}?order=${order}`);
        expect({ status: res.status, body: res.body }).toEqual({
          status: 400,
          body: badField(messagesOf(sessionId), 'order'),
        });
      },
    );

    it('answers 404 for an unknown session, cursor or not', async () => {
      const unknown = UNKNOWN_ID;
      const res = await request(t.http).get(`${messagesOf(unknown)}?after=${m[0].id}`);
      expect(res.status).toBe(404);
    });
  });

  describe('Link rel="next" on GET /api/v1/sessions/:id/messages', () => {
    let sessionId: string;

    beforeEach(async () => {
      sessionId = await createSession();
    });

    it('is sent exactly when the page is full, as a path and query relative to the server root', async () => {
      const m = await append(sessionId, 5);
      const full = await get(`${messagesOf(sessionId)}?limit=5`);
      const link = nextLink(full);
      expect(link).toBeDefined();
      expect(link!.split('?')[0]).toBe(messagesOf(sessionId));
      expect(queryOf(link!)).toMatchObject({ after: String(m[4].id), limit: '5' });
      // The page after a full last page is empty, and has no next.
      const after = await get(link!);
      expect({ body: after.body, link: after.headers.link }).toEqual({ body: [], link: undefined });

      const short = await get(`${messagesOf(sessionId)}?limit=6`);
      expect({ length: short.body.length, link: short.headers.link }).toEqual({
        length: 5,
        link: undefined,
      });
      const defaults = await get(messagesOf(sessionId));
      expect(defaults.headers.link).toBeUndefined();
      const empty = await get(`${messagesOf(await createSession())}?limit=1`);
      expect({ body: empty.body, link: empty.headers.link }).toEqual({ body: [], link: undefined });
    });

    it('keeps the trailing-slash request, order and before in the next page', async () => {
      const m = await append(sessionId, 6);
      const desc = await get(`${messagesOf(sessionId)}/?order=desc&limit=2`);
      const link = nextLink(desc)!;
      expect(link.split('?')[0]).toBe(messagesOf(sessionId));
      expect(queryOf(link)).toMatchObject({ after: String(m[4].id), order: 'desc', limit: '2' });
      expect((await get(link)).body).toEqual([m[3], m[2]]);

      const bounded = await get(
        `${messagesOf(sessionId)}?after=${m[0].id}&before=${m[5].id}&limit=2`,
      );
      const boundedLink = nextLink(bounded)!;
      expect(queryOf(boundedLink)).toMatchObject({ before: String(m[5].id) });
      expect((await get(boundedLink)).body).toEqual([m[3], m[4]]);
    });

    it('after a full before page, next names the rest up to the cursor, which is nothing', async () => {
      const m = await append(sessionId, 6);
      const page = await get(`${messagesOf(sessionId)}?before=${m[4].id}&limit=2`);
      expect(page.body).toEqual([m[2], m[3]]);
      const link = nextLink(page)!;
      expect(queryOf(link)).toMatchObject({ after: String(m[3].id), before: String(m[4].id) });
      const rest = await get(link);
      expect({ body: rest.body, link: rest.headers.link }).toEqual({ body: [], link: undefined });
    });

    it('continues an offset page by cursor', async () => {
      const m = await append(sessionId, 8);
      const page = await get(`${messagesOf(sessionId)}?skip=2&limit=3`);
      expect(page.body).toEqual(m.slice(2, 5));
      const link = nextLink(page)!;
      expect(queryOf(link)).not.toHaveProperty('skip');
      expect((await get(link)).body).toEqual(m.slice(5, 8));
    });

    it.each([
      ['asc', 3],
      ['asc', 5],
      ['desc', 3],
      ['desc', 1],
    ] as const)(
      'following next (order=%s, limit=%d) visits every message once, in order',
      async (order, limit) => {
        const m = await append(sessionId, 10);
        await append(await createSession(), 3, 'other');
        const { items, totals } = await walk<MessageBody>(
          `${messagesOf(sessionId)}?order=${order}&limit=${limit}`,
        );
        expect(idsOf(items)).toEqual(idsOf(order === 'asc' ? m : [...m].reverse()));
        expect(new Set(totals)).toEqual(new Set(['10']));
      },
    );

    it('following next walks the range between after and before', async () => {
      const m = await append(sessionId, 10);
      const { items, pages } = await walk<MessageBody>(
        `${messagesOf(sessionId)}?after=${m[1].id}&before=${m[8].id}&limit=2`,
      );
      expect(idsOf(items)).toEqual(idsOf(m.slice(2, 8)));
      expect(pages.map((p) => p.length)).toEqual([2, 2, 2, 0]);
    });

    it('following next (asc) visits messages appended during the walk too, each once, in order', async () => {
      const m = await append(sessionId, 7);
      const appended: MessageBody[] = [];
      const { items, totals } = await walk<MessageBody>(
        `${messagesOf(sessionId)}?limit=3`,
        async (_, pageNumber) => {
          if (pageNumber <= 4) appended.push(...(await append(sessionId, 2, `late${pageNumber}-`)));
        },
      );
      expect(appended).toHaveLength(8);
      expect(idsOf(items)).toEqual(idsOf([...m, ...appended]));
      expect(items.map((x) => x.content)).toEqual([...m, ...appended].map((x) => x.content));
      // X-Total-Count follows the growing list.
      expect(totals[0]).toBe('7');
      expect(totals.at(-1)).toBe('15');
    });

    it('following next (desc) visits every message that existed, unmoved by appends at the front', async () => {
      const m = await append(sessionId, 7);
      const { items } = await walk<MessageBody>(
        `${messagesOf(sessionId)}?order=desc&limit=2`,
        async () => {
          await append(sessionId, 1, 'late');
        },
      );
      expect(idsOf(items)).toEqual(idsOf([...m].reverse()));
    });

    it('following next neither skips nor repeats when visited messages are deleted mid-walk', async () => {
      const m = await append(sessionId, 9);
      const { items } = await walk<MessageBody>(
        `${messagesOf(sessionId)}?limit=3`,
        async (page) => {
          // Delete the first message of the page just read (not the cursor, which is its last).
          if (page.length > 1) {
            await request(t.http)
              .delete(`${messagesOf(sessionId)}/${page[0].id}`)
              .expect(204);
          }
        },
      );
      expect(idsOf(items)).toEqual(idsOf(m));
    });
  });

  describe('GET /api/v1/sessions?cursor=…', () => {
    it('pages by cursor with Link next exactly when the page is full; X-Total-Count is the whole list', async () => {
      await createSessions(5);
      const order = await allSessions();
      const first = await get(`${SESSIONS}?limit=2`);
      expect({ body: first.body, total: first.headers['x-total-count'] }).toEqual({
        body: order.slice(0, 2),
        total: '5',
      });
      const link = nextLink(first)!;
      expect(link.split('?')[0]).toBe(SESSIONS);
      expect(queryOf(link)).toMatchObject({ cursor: expect.any(String), limit: '2' });
      const second = await get(link);
      expect({ body: second.body, total: second.headers['x-total-count'] }).toEqual({
        body: order.slice(2, 4),
        total: '5',
      });
      const third = await get(nextLink(second)!);
      expect({
        body: third.body,
        total: third.headers['x-total-count'],
        link: third.headers.link,
      }).toEqual({ body: order.slice(4), total: '5', link: undefined });

      const short = await get(`${SESSIONS}?limit=6`);
      expect(short.headers.link).toBeUndefined();
      const defaults = await get(SESSIONS);
      expect(defaults.headers.link).toBeUndefined();
    });

    it('sends next on a full last page; that next page is empty and has none', async () => {
      await createSessions(4);
      const { pages, totals } = await walk<SessionBody>(`${SESSIONS}?limit=2`);
      expect(pages.map((p) => p.length)).toEqual([2, 2, 0]);
      expect(totals).toEqual(['4', '4', '4']);
    });

    it('continues an offset page by cursor', async () => {
      await createSessions(6);
      const order = await allSessions();
      const page = await get(`${SESSIONS}?skip=1&limit=2`);
      expect(page.body).toEqual(order.slice(1, 3));
      const link = nextLink(page)!;
      expect(queryOf(link)).not.toHaveProperty('skip');
      expect((await get(link)).body).toEqual(order.slice(3, 5));
    });

    it.each([1, 2, 3, 7])(
      'following next (limit=%d) visits every session once, in order',
      async (limit) => {
        await createSessions(7);
        const order = await allSessions();
        const { items, totals } = await walk<SessionBody>(`${SESSIONS}?limit=${limit}`);
        expect(idsOf(items)).toEqual(idsOf(order));
        expect(new Set(totals)).toEqual(new Set(['7']));
      },
    );

    it('following next visits every session once, in order, while sessions are created and visited ones jump to the front', async () => {
      await createSessions(12);
      const order = await allSessions();
      const created: string[] = [];
      const bumped = new Set<string>();
      const { items } = await walk<SessionBody>(`${SESSIONS}?limit=3`, async (page, n) => {
        created.push(await createSession({ name: `new ${n}` }));
        if (page.length > 0) {
          // The first session of this page and the last of the first page get new activity.
          for (const id of new Set([page[0].id, order[2].id])) {
            await request(t.http)
              .post(messagesOf(id))
              .send({ content: `bump ${n}` })
              .expect(201);
            bumped.add(id);
          }
        }
      });
      expect(idsOf(items)).toEqual(idsOf(order));
      // The changes really happened: new and bumped sessions are now all ahead of the others.
      const now = await allSessions();
      const moved = new Set([...created, ...bumped]);
      expect(now).toHaveLength(12 + created.length);
      expect(new Set(idsOf(now.slice(0, moved.size)))).toEqual(moved);
    });

    it('keeps going when the session under the cursor is deleted', async () => {
      await createSessions(6);
      const order = await allSessions();
      const { items } = await walk<SessionBody>(`${SESSIONS}?limit=2`, async (page) => {
        if (page.length > 0) {
          await request(t.http)
            .delete(`${SESSIONS}/${page.at(-1)!.id}`)
            .expect(204);
        }
      });
      expect(idsOf(items)).toEqual(idsOf(order));
    });

    it.each([
      ['', (s: SessionBody) => !s.archived],
      ['archived=false', (s: SessionBody) => !s.archived],
      ['archived=true', (s: SessionBody) => s.archived],
      ['archived=any', () => true],
      ['pinned=true', (s: SessionBody) => !s.archived && s.pinned],
      ['pinned=false', (s: SessionBody) => !s.archived && !s.pinned],
      ['archived=true&pinned=true', (s: SessionBody) => s.archived && s.pinned],
      ['archived=any&pinned=false', (s: SessionBody) => !s.pinned],
    ])('combines the cursor with the filters %j', async (filters, matches) => {
      await createSessions(16, (i) => ({ archived: i % 2 === 1, pinned: i % 4 >= 2 }));
      const expected = (await allSessions()).filter(matches);
      expect(expected.length).toBeGreaterThan(3);
      const first = `${SESSIONS}?limit=2${filters ? `&${filters}` : ''}`;
      const { items, totals, links } = await walk<SessionBody>(first);
      expect(items).toEqual(expected);
      expect(new Set(totals)).toEqual(new Set([String(expected.length)]));
      const wanted = Object.fromEntries(new URLSearchParams(filters));
      for (const link of links) {
        expect(queryOf(link)).toMatchObject({ archived: 'false', ...wanted });
        if (!('pinned' in wanted)) expect(queryOf(link)).not.toHaveProperty('pinned');
      }
    });

    it.each(['0', '3'])('answers 400 naming skip for skip=%s with a cursor', async (skip) => {
      await createSessions(3);
      const link = nextLink(await get(`${SESSIONS}?limit=1`))!;
      for (const url of [`${link}&skip=${skip}`, link.replace('?', `?skip=${skip}&`)]) {
        const res = await request(t.http).get(url);
        expect({ status: res.status, body: res.body }).toEqual({
          status: 400,
          body: badField(SESSIONS, 'skip'),
        });
      }
    });

    describe('refuses cursors it did not issue with a 400 naming cursor', () => {
      let cursor: string;

      beforeEach(async () => {
        await createSessions(3);
        cursor = queryOf(nextLink(await get(`${SESSIONS}?limit=1`))!).cursor;
        expect(cursor).toMatch(/^[\w-]+\.[\w-]+$/);
      });

      /** Every value is refused with the contract's 400; the ones that are not are listed. */
      async function expectRefused(...values: (string | string[])[]): Promise<void> {
        const wrong: { cursor: string | string[]; status: number }[] = [];
        for (const value of values) {
          const query = new URLSearchParams(
            (Array.isArray(value) ? value : [value]).map((v): [string, string] => ['cursor', v]),
          );
          const res = await request(t.http).get(`${SESSIONS}?${query.toString()}`);
          const fields = (res.body as { errors?: { field: string }[] }).errors?.map((e) => e.field);
          const refused =
            res.status === 400 &&
            res.body.instance === SESSIONS &&
            JSON.stringify(fields) === '["cursor"]';
          if (!refused) wrong.push({ cursor: value, status: res.status });
        }
        expect(wrong).toEqual([]);
      }

      it('accepts the cursor as issued', async () => {
        const res = await get(`${SESSIONS}?cursor=${cursor}`);
        expect(res.body).toHaveLength(2);
      });

      it('answers a tampered cursor with a problem document', async () => {
        const res = await request(t.http).get(`${SESSIONS}?cursor=${flip(cursor, 3)}`);
        expect({ status: res.status, body: res.body }).toEqual({
          status: 400,
          body: badField(SESSIONS, 'cursor'),
        });
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      });

      it('refuses the payload with any one character flipped', async () => {
        const payload = cursor.split('.')[0];
        await expectRefused(...Array.from(payload, (_, i) => flip(cursor, i)));
      });

      it('refuses the signature with any one character flipped', async () => {
        const start = cursor.indexOf('.') + 1;
        await expectRefused(...Array.from(cursor.slice(start), (_, i) => flip(cursor, start + i)));
      });

      it('refuses a truncated, extended or rearranged cursor', async () => {
        const [payload, signature] = cursor.split('.');
        await expectRefused(
          cursor.slice(0, -1),
          cursor.slice(1),
          `${cursor}A`,
          `${cursor}=`,
          `${cursor}.`,
          `${cursor}.${signature}`,
          `${signature}.${payload}`,
          payload,
          `${payload}.`,
          `.${signature}`,
          signature,
          cursor.replace('.', ''),
          cursor.toUpperCase(),
          ` ${cursor}`,
        );
      });

      it('refuses random base64, empty strings, message ids and junk', async () => {
        const random = (n: number) =>
          Buffer.from(Array.from({ length: n }, (_, i) => (i * 97 + 13) % 256)).toString(
            'base64url',
          );
        await expectRefused(
          random(48),
          `${random(30)}.${random(32)}`,
          `${Buffer.from('{"v":1,"k":[9999999999999,1,"x"]}').toString('base64url')}.${random(32)}`,
          '',
          '.',
          '..',
          '5',
          '12345',
          'null',
          '{"v":1}',
          '%00',
          '\u0000',
          '😀.😀',
          'x'.repeat(5000),
          `${'a'.repeat(2000)}.${'b'.repeat(2000)}`,
          [cursor, cursor],
        );
      });

      it('refuses a message-list cursor', async () => {
        const sessionId = await createSession();
        const m = await append(sessionId, 2);
        const messageLink = nextLink(await get(`${messagesOf(sessionId)}?limit=1`))!;
        await expectRefused(String(m[0].id), queryOf(messageLink).after, messageLink);
      });

      it('refuses a correctly signed cursor that is not a session list position', async () => {
        const cursors = t.app.get(CursorService);
        const shapes: unknown[] = [
          null,
          'cursor',
          42,
          [],
          {},
          { v: 1 },
          { v: 2, k: [1000, 1000, 'id'] },
          { v: '1', k: [1000, 1000, 'id'] },
          { v: 1, k: [1000, 1000] },
          { v: 1, k: [1000, 1000, 'id', 'extra'] },
          { v: 1, k: ['1000', 1000, 'id'] },
          { v: 1, k: [1000, 1.5, 'id'] },
          { v: 1, k: [1e20, 1000, 'id'] },
          { v: 1, k: [1000, 1000, 7] },
          { v: 1, k: { 0: 1000, 1: 1000, 2: 'id' } },
          { after: 5 },
        ];
        await expectRefused(...shapes.map((shape) => cursors.encode(shape)));
      });

      it('refuses a cursor signed by another deployment', async () => {
        const elsewhere = await createTestApp();
        try {
          await request(elsewhere.http).post(SESSIONS).send({}).expect(201);
          await request(elsewhere.http).post(SESSIONS).send({}).expect(201);
          const res = await request(elsewhere.http).get(`${SESSIONS}?limit=1`).expect(200);
          const foreign = queryOf(nextLink(res)!).cursor;
          await expectRefused(foreign);
        } finally {
          await elsewhere.close();
        }
      });
    });
  });

  /** Equal timestamps forced in the database: sessions order by (last_updated_at, created_at, id), messages by (timestamp, id). */
  describe('ties', () => {
    it('walks sessions with equal last_updated_at and created_at in id order, each once', async () => {
      const ids = await createSessions(9);
      await t.db.write((m) =>
        m.query('UPDATE "sessions" SET "last_updated_at" = 5000, "created_at" = 4000'),
      );
      const expected = [...ids].sort().reverse();
      expect(idsOf(await allSessions())).toEqual(expected);
      for (const limit of [1, 2, 4]) {
        const { items } = await walk<SessionBody>(`${SESSIONS}?limit=${limit}`);
        expect(idsOf(items)).toEqual(expected);
      }
    });

    it('orders sessions by last_updated_at, then created_at, then id, across pages', async () => {
      const ids = await createSessions(12);
      // Three activity times, two creation times within each, and full ties on the rest.
      const keys = ids.map((id, i): [number, number, string] => [
        [3000, 1000, 2000][i % 3],
        [100, 200][Math.floor(i / 3) % 2],
        id,
      ]);
      for (const [last, created, id] of keys) {
        await t.db.write((m) =>
          m.query(
            t.db.sql(
              'UPDATE "sessions" SET "last_updated_at" = ?, "created_at" = ? WHERE "id" = ?',
            ),
            [last, created, id],
          ),
        );
      }
      const expected = [...keys]
        .sort((a, b) => b[0] - a[0] || b[1] - a[1] || (a[2] < b[2] ? 1 : a[2] > b[2] ? -1 : 0))
        .map((k) => k[2]);
      expect(idsOf(await allSessions())).toEqual(expected);
      for (const limit of [1, 2, 5]) {
        const { items } = await walk<SessionBody>(`${SESSIONS}?limit=${limit}`);
        expect(idsOf(items)).toEqual(expected);
      }
    });

    it('walks messages with equal timestamps in id order, each once, both ways', async () => {
      const sessionId = await createSession();
      const m = await append(sessionId, 8);
      await t.db.write((q) =>
        q.query(t.db.sql('UPDATE "chat_messages" SET "timestamp" = 1000 WHERE "session_id" = ?'), [
          sessionId,
        ]),
      );
      for (const limit of [1, 3]) {
        const asc = await walk<MessageBody>(`${messagesOf(sessionId)}?limit=${limit}`);
        expect(idsOf(asc.items)).toEqual(idsOf(m));
        const desc = await walk<MessageBody>(`${messagesOf(sessionId)}?order=desc&limit=${limit}`);
        expect(idsOf(desc.items)).toEqual(idsOf(m).reverse());
      }
      const before = await get(`${messagesOf(sessionId)}?before=${m[5].id}&limit=2`);
      expect(idsOf(before.body)).toEqual(idsOf(m.slice(3, 5)));
      const after = await get(`${messagesOf(sessionId)}?after=${m[5].id}`);
      expect(idsOf(after.body)).toEqual(idsOf(m.slice(6)));
    });

    it('orders messages by timestamp, then id, for every cursor combination', async () => {
      const sessionId = await createSession();
      const otherId = await createSession();
      const m = await append(sessionId, 8);
      await append(otherId, 3);
      // Timestamps out of id order, with ties: the list order is (timestamp, id), not id.
      const timestamps = [3000, 1000, 2000, 1000, 3000, 2000, 1000, 3000];
      for (const [i, message] of m.entries()) {
        await t.db.write((q) =>
          q.query(t.db.sql('UPDATE "chat_messages" SET "timestamp" = ? WHERE "id" = ?'), [
            timestamps[i],
            message.id,
          ]),
        );
      }
      const sorted = m
        .map((message, i) => ({ ...message, timestamp: new Date(timestamps[i]).toISOString() }))
        .sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp) || a.id - b.id);
      expect((await get(messagesOf(sessionId))).body).toEqual(sorted);

      for (const order of ['asc', 'desc'] as const) {
        for (const limit of [1, 3]) {
          const { items } = await walk<MessageBody>(
            `${messagesOf(sessionId)}?order=${order}&limit=${limit}`,
          );
          expect(idsOf(items)).toEqual(idsOf(order === 'asc' ? sorted : [...sorted].reverse()));
        }
      }
      const mismatches: string[] = [];
      const cursors = [undefined, ...sorted.map((x) => x.id)];
      for (const order of ['asc', 'desc'] as const) {
        for (const limit of [2, 1000]) {
          for (const after of cursors) {
            for (const before of cursors) {
              const query = new URLSearchParams({ order, limit: String(limit) });
              if (after !== undefined) query.set('after', String(after));
              if (before !== undefined) query.set('before', String(before));
              const res = await get(`${messagesOf(sessionId)}?${query.toString()}`);
              const expected = idsOf(expectedPage(sorted, { after, before, order, limit }));
              if (JSON.stringify(idsOf(res.body)) !== JSON.stringify(expected)) {
                mismatches.push(`${query.toString()}: ${JSON.stringify(idsOf(res.body))}`);
              }
            }
          }
        }
      }
      expect(mismatches).toEqual([]);
    });
  });
});

describe('Cursors across the processes of one deployment (e2e)', () => {
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    const url = await freshDatabaseUrl('cursors-shared');
    a = await createTestApp({ DATABASE_URL: url });
    b = await createTestApp({ DATABASE_URL: url });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });
  beforeEach(() => resetDatabase(a.db));

  it('accepts, in one process, the cursors another process issued', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await request(a.http).post(SESSIONS).send({}).expect(201)).body.id);
    }
    const order = (await request(a.http).get(`${SESSIONS}?limit=1000`).expect(200)).body;
    const visited: SessionBody[] = [];
    let url: string | undefined = `${SESSIONS}?limit=2`;
    // Alternate the processes page by page, as a load balancer might.
    for (let n = 0; url !== undefined; n++) {
      const res = await request(n % 2 === 0 ? a.http : b.http).get(url);
      expect({ url, status: res.status }).toEqual({ url, status: 200 });
      visited.push(...(res.body as SessionBody[]));
      url = nextLink(res);
    }
    expect(idsOf(visited)).toEqual(idsOf(order));
    expect(new Set(idsOf(visited))).toEqual(new Set(ids));
  });
});
