import { DataSource } from 'typeorm';
import { seededRandom } from '../bench/random';
import { messageAt, type MessageBody, messagesOf, SESSIONS, type SessionBody } from './helpers/api';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { invariantViolations, readerOf, treeViolations } from './helpers/invariants';
import { type RunningServer, serversOn } from './helpers/server-process';

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** One request with `fetch` (real sockets, so many can be in flight); the body parsed. */
async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Reply['body']) : {} };
}

const message = (reply: Reply) => reply.body as unknown as MessageBody;
const session = (reply: Reply) => reply.body as unknown as SessionBody;
/** The fields a 400 problem names. */
const fieldsOf = (reply: Reply) =>
  ((reply.body.errors as { field: string }[] | undefined) ?? []).map((e) => e.field);
/** A 400 naming exactly `field`. */
const refusedFor = (reply: Reply, field: string) =>
  reply.status === 400 && fieldsOf(reply).join() === field;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Row {
  id: number;
  session_id: string;
  parent_id: number | null;
  timestamp: number;
  content: string;
}

/**
 * v1.2's conversation trees under concurrent writes (docs/API.md § Branches): sibling appends, appends
 * racing a DELETE of their parent, PATCHes and forks racing deletes, and a seeded random interleaving
 * of all of them, each checked afterwards straight in the database. On PostgreSQL through two server
 * processes (nothing in-process is shared: the database must keep the trees whole); on SQLite, which
 * serves one process per file (docs/operations.md), through one server process on a file.
 */
describe(`Conversation trees under concurrency (e2e, ${onPostgres ? 'two processes on PostgreSQL' : 'one process on a SQLite file'})`, () => {
  let servers: RunningServer[] = [];
  let db: DataSource;
  /** The server of the k-th request: the two processes in turn (on SQLite, the one). */
  const base = (k: number) => servers[k % servers.length].base;

  beforeAll(async () => {
    ({ servers, db } = await serversOn(await freshDatabaseUrl('trees'), onPostgres ? 2 : 1));
  }, 60_000);
  afterAll(async () => {
    await db?.destroy();
    await Promise.all(servers.map((s) => s.stop()));
  });
  afterEach(async () => {
    const problems = [
      ...(await invariantViolations(readerOf(db), { messagesDeleted: true })),
      ...(await treeViolations(readerOf(db), { ordered: true })),
    ];
    if (problems.length > 0) {
      for (const s of servers) process.stderr.write(s.stderr());
    }
    expect(problems).toEqual([]);
  });

  async function newSession(k = 0): Promise<string> {
    const reply = await call(base(k), 'POST', SESSIONS, {});
    expect(reply.status).toBe(201);
    return session(reply).id;
  }
  async function append(sessionId: string, body: object, k = 0): Promise<MessageBody> {
    const reply = await call(base(k), 'POST', messagesOf(sessionId), body);
    if (reply.status !== 201)
      throw new Error(`append: ${reply.status} ${JSON.stringify(reply.body)}`);
    return message(reply);
  }
  async function storedMessages(sessionId?: string): Promise<Row[]> {
    const rows: Record<keyof Row, number | string | null>[] = await db.query(
      `SELECT "id", "session_id", "parent_id", "timestamp", "content" FROM "chat_messages"
       ${sessionId === undefined ? '' : `WHERE "session_id" = '${sessionId}'`} ORDER BY "timestamp", "id"`,
    );
    return rows.map((r) => ({
      id: Number(r.id),
      session_id: String(r.session_id),
      parent_id: r.parent_id === null ? null : Number(r.parent_id),
      timestamp: Number(r.timestamp),
      content: String(r.content),
    }));
  }
  async function storedSession(
    sessionId: string,
  ): Promise<{ current: number | null; count: number } | undefined> {
    const [row]: { current_message_id: number | string | null; message_count: number | string }[] =
      await db.query(
        `SELECT "current_message_id", "message_count" FROM "sessions" WHERE "id" = '${sessionId}'`,
      );
    return (
      row && {
        current: row.current_message_id === null ? null : Number(row.current_message_id),
        count: Number(row.message_count),
      }
    );
  }

  it('two appends to one parent at once, one through each process: two siblings, the later one current', async () => {
    const chains = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const id = await newSession(i);
        const a = await append(id, { content: 'a' }, i);
        const b = await append(id, { content: 'b' }, i + 1);
        return { id, a, b };
      }),
    );
    const replies = await Promise.all(
      chains.map(({ id, a }) =>
        Promise.all(
          [0, 1].map((k) =>
            call(base(k), 'POST', messagesOf(id), { content: `x${k}`, parent_id: a.id }),
          ),
        ),
      ),
    );
    for (const [i, { id, a, b }] of chains.entries()) {
      expect(replies[i].map((r) => r.status)).toEqual([201, 201]);
      const [x, y] = replies[i].map(message);
      expect([x.parent_id, y.parent_id]).toEqual([a.id, a.id]);
      expect(x.id).not.toBe(y.id);
      const stored = await storedMessages(id);
      // Children of a, oldest first: b, then the two siblings in the order they were stamped.
      const later = [x, y].sort((p, q) => p.timestamp.localeCompare(q.timestamp) || p.id - q.id)[1];
      expect(stored.filter((m) => m.parent_id === a.id).map((m) => m.id)).toEqual([
        b.id,
        ...[x, y]
          .sort((p, q) => p.timestamp.localeCompare(q.timestamp) || p.id - q.id)
          .map((m) => m.id),
      ]);
      expect(stored.map((m) => m.timestamp)).toEqual([...new Set(stored.map((m) => m.timestamp))]);
      expect(await storedSession(id)).toEqual({ current: later.id, count: 4 });
    }
  });

  it('appends without parent_id through both processes at once still form one chain', async () => {
    const ids = await Promise.all([newSession(0), newSession(1)]);
    const replies = await Promise.all(
      ids.flatMap((id) =>
        Array.from({ length: 16 }, (_, k) =>
          call(base(k), 'POST', messagesOf(id), { content: `m${k}` }),
        ),
      ),
    );
    expect(replies.map((r) => r.status).filter((s) => s !== 201)).toEqual([]);
    for (const id of ids) {
      const stored = await storedMessages(id);
      expect(stored).toHaveLength(16);
      expect(stored.map((m) => m.parent_id)).toEqual([
        null,
        ...stored.slice(0, -1).map((m) => m.id),
      ]);
      expect(await storedSession(id)).toEqual({ current: stored[15].id, count: 16 });
    }
  });

  /**
   * Each scenario: a small tree, then two (or three) requests sent at once, alternately through
   * either process and in either order; then what each outcome allows. Run on many sessions at
   * once, so both orders of the race happen.
   */
  interface Tree {
    id: string;
    r: MessageBody;
    p: MessageBody;
  }
  /** The tree with what a scenario's setup added (q, s: only where it added them). */
  interface Scene extends Tree {
    q: MessageBody;
    s: MessageBody;
  }
  interface Scenario {
    name: string;
    /** How many sessions run it at once (default 6): more for a race with a narrow window. */
    copies?: number;
    /** Beyond r → p (p current). */
    setup?: (tree: Tree) => Promise<Partial<Pick<Scene, 'q' | 's'>>>;
    race: (tree: Scene) => [string, string, object?][];
    check: (
      tree: Scene,
      replies: Reply[],
      stored: Row[],
      after: { current: number | null; count: number },
    ) => Promise<void> | void;
  }
  const idsOf = (stored: Row[]) => stored.map((m) => m.id);

  const scenarios: Scenario[] = [
    {
      name: 'append under p | DELETE p',
      race: ({ id, p }) => [
        ['POST', messagesOf(id), { content: 'x', parent_id: p.id }],
        ['DELETE', messageAt(id, p.id)],
      ],
      check: ({ r, p }, [append, del], stored, after) => {
        expect(del.status).toBe(204);
        if (append.status === 201) {
          // Stored first, then moved up to r with p's other children: acknowledged, not lost.
          expect(message(append).parent_id).toBe(p.id);
          const x = message(append).id;
          expect(stored.map((m) => [m.id, m.parent_id])).toEqual([
            [r.id, null],
            [x, r.id],
          ]);
          expect(after).toEqual({ current: x, count: 2 });
        } else {
          expect(refusedFor(append, 'parent_id')).toBe(true);
          expect(idsOf(stored)).toEqual([r.id]);
          expect(after).toEqual({ current: r.id, count: 1 });
        }
      },
    },
    {
      name: 'append after the current message | DELETE it',
      race: ({ id, p }) => [
        ['POST', messagesOf(id), { content: 'x' }],
        ['DELETE', messageAt(id, p.id)],
      ],
      check: ({ r }, [append, del], stored, after) => {
        expect([append.status, del.status]).toEqual([201, 204]);
        // Either order ends with x under r: adopted from p, or appended to r, current after p went.
        const x = message(append);
        expect(stored.map((m) => [m.id, m.parent_id])).toEqual([
          [r.id, null],
          [x.id, r.id],
        ]);
        expect(after).toEqual({ current: x.id, count: 2 });
      },
    },
    {
      name: 'append under the root | DELETE the root',
      race: ({ id, r }) => [
        ['POST', messagesOf(id), { content: 'x', parent_id: r.id }],
        ['DELETE', messageAt(id, r.id)],
      ],
      check: ({ p }, [append, del], stored, after) => {
        expect(del.status).toBe(204);
        if (append.status === 201) {
          const x = message(append).id;
          // Both of r's children became roots.
          expect(stored.map((m) => [m.id, m.parent_id])).toEqual([
            [p.id, null],
            [x, null],
          ]);
          expect(after).toEqual({ current: x, count: 2 });
        } else {
          expect(refusedFor(append, 'parent_id')).toBe(true);
          expect(stored.map((m) => [m.id, m.parent_id])).toEqual([[p.id, null]]);
          expect(after).toEqual({ current: p.id, count: 1 });
        }
      },
    },
    {
      name: 'append under p | DELETE r | DELETE p',
      race: ({ id, r, p }) => [
        ['POST', messagesOf(id), { content: 'x', parent_id: p.id }],
        ['DELETE', messageAt(id, r.id)],
        ['DELETE', messageAt(id, p.id)],
      ],
      check: (_tree, [append, ...deletes], stored, after) => {
        expect(deletes.map((d) => d.status)).toEqual([204, 204]);
        if (append.status === 201) {
          const x = message(append).id;
          expect(stored.map((m) => [m.id, m.parent_id])).toEqual([[x, null]]);
          expect(after).toEqual({ current: x, count: 1 });
        } else {
          expect(refusedFor(append, 'parent_id')).toBe(true);
          expect(stored).toEqual([]);
          expect(after).toEqual({ current: null, count: 0 });
        }
      },
    },
    {
      name: 'PATCH current_message_id to p | DELETE p',
      // r → p → q and r → s: s current.
      setup: async ({ id, r, p }) => ({
        q: await append(id, { content: 'q', parent_id: p.id }),
        s: await append(id, { content: 's', parent_id: r.id }),
      }),
      race: ({ id, p }) => [
        ['PATCH', `${SESSIONS}/${id}`, { current_message_id: p.id }],
        ['DELETE', messageAt(id, p.id)],
      ],
      check: ({ r, q, s }, [patch, del], stored, after) => {
        expect(del.status).toBe(204);
        expect(stored.map((m) => [m.id, m.parent_id])).toEqual([
          [r.id, null],
          [q.id, r.id],
          [s.id, r.id],
        ]);
        if (patch.status === 200) {
          // The newest leaf under p, which its deletion left alone.
          expect(session(patch).current_message_id).toBe(q.id);
          expect(after).toEqual({ current: q.id, count: 3 });
        } else {
          expect(refusedFor(patch, 'current_message_id')).toBe(true);
          expect(after).toEqual({ current: s.id, count: 3 });
        }
      },
    },
    {
      name: 'PATCH current_message_id to p | DELETE the current message under it',
      // r → p → q: q current.
      setup: async ({ id, p }) => ({ q: await append(id, { content: 'q', parent_id: p.id }) }),
      race: ({ id, p, q }) => [
        ['PATCH', `${SESSIONS}/${id}`, { current_message_id: p.id }],
        ['DELETE', messageAt(id, q.id)],
      ],
      check: ({ p, q }, [patch, del], _stored, after) => {
        expect([patch.status, del.status]).toEqual([200, 204]);
        // PATCH first: q (the leaf under p), then its deletion moves back to p; DELETE first: p.
        expect([p.id, q.id]).toContain(session(patch).current_message_id);
        expect(after).toEqual({ current: p.id, count: 2 });
      },
    },
    {
      name: 'fork at the current message | DELETE it',
      // The window was one round trip wide (PostgreSQL: 10 of 300 races, and 1 to 5 of 40, lost before the fix).
      copies: 30,
      race: ({ id, p }) => [
        ['POST', `${SESSIONS}/${id}/fork`, {}],
        ['DELETE', messageAt(id, p.id)],
      ],
      check: async ({ id, r, p }, [fork, del]) => {
        expect(del.status).toBe(204);
        // The fork names no message: it copies whatever the current branch is, never a 400.
        expect(fork.status).toBe(201);
        const copy = session(fork);
        const copies = await storedMessages(copy.id);
        expect(copy.forked_from?.session_id).toBe(id);
        const source = copy.forked_from?.message_id === p.id ? ['r', 'p'] : ['r'];
        expect([r.id, p.id]).toContain(copy.forked_from?.message_id);
        expect(copies.map((m) => m.content)).toEqual(source);
        expect(copies.map((m) => m.parent_id)).toEqual([
          null,
          ...copies.slice(0, -1).map((m) => m.id),
        ]);
        expect(await storedSession(copy.id)).toEqual({
          current: copies.at(-1)!.id,
          count: copies.length,
        });
      },
    },
    {
      name: 'fork at p | DELETE p',
      race: ({ id, p }) => [
        ['POST', `${SESSIONS}/${id}/fork`, { message_id: p.id }],
        ['DELETE', messageAt(id, p.id)],
      ],
      check: async (_tree, [fork, del]) => {
        expect(del.status).toBe(204);
        if (fork.status === 201) {
          const copies = await storedMessages(session(fork).id);
          expect(copies.map((m) => m.content)).toEqual(['r', 'p']);
        } else {
          expect(refusedFor(fork, 'message_id')).toBe(true);
        }
      },
    },
    {
      name: 'GET the current branch | DELETE the current message',
      copies: 30,
      race: ({ id, p }) => [
        ['GET', `${messagesOf(id)}?branch=current`],
        ['DELETE', messageAt(id, p.id)],
      ],
      check: (_tree, [branch, del]) => {
        expect(del.status).toBe(204);
        // `current` names no message: the branch before the delete or after it, never a 400.
        expect(branch.status).toBe(200);
        const contents = (branch.body as unknown as MessageBody[]).map((m) => m.content);
        expect([['r', 'p'], ['r']]).toContainEqual(contents);
      },
    },
    {
      name: 'DELETE p | DELETE p',
      race: ({ id, p }) => [
        ['DELETE', messageAt(id, p.id)],
        ['DELETE', messageAt(id, p.id)],
      ],
      check: ({ r }, replies, stored, after) => {
        expect(replies.map((d) => d.status).sort()).toEqual([204, 404]);
        expect(idsOf(stored)).toEqual([r.id]);
        expect(after).toEqual({ current: r.id, count: 1 });
      },
    },
  ];
  it('races appends, PATCHes, forks and deletes against a DELETE of the message they name', async () => {
    // TREE_COPIES and TREE_SCENARIO (part of a name) make a longer hunt for one race.
    const copies =
      process.env.TREE_COPIES === undefined ? undefined : Number(process.env.TREE_COPIES);
    const chosen = scenarios.filter((s) => s.name.includes(process.env.TREE_SCENARIO ?? ''));
    const outcomes = new Map<string, Map<string, number>>();
    const jobs = chosen.flatMap((scenario) =>
      Array.from({ length: copies ?? scenario.copies ?? 6 }, (_, c) => async () => {
        const id = await newSession(c);
        const r = await append(id, { content: 'r' }, c);
        const p = await append(id, { content: 'p' }, c + 1);
        const tree = { id, r, p, ...(await scenario.setup?.({ id, r, p })) } as Scene;
        const requests = scenario.race(tree);
        // Alternate which request leaves first, and through which process.
        const order =
          c % 2 === 0 ? requests.map((_, i) => i) : requests.map((_, i) => requests.length - 1 - i);
        const replies: Reply[] = new Array<Reply>(requests.length);
        await Promise.all(
          order.map(async (i, n) => {
            if (c % 3 === 2 && n > 0) await sleep(1);
            const [method, path, body] = requests[i];
            replies[i] = await call(base(c + i), method, path, body);
          }),
        );
        const statuses = replies.map((reply) => reply.status).join(' ');
        const seen = outcomes.get(scenario.name) ?? new Map<string, number>();
        seen.set(statuses, (seen.get(statuses) ?? 0) + 1);
        outcomes.set(scenario.name, seen);
        const after = await storedSession(id);
        try {
          await scenario.check(tree, replies, await storedMessages(id), after!);
        } catch (error) {
          throw new Error(
            `${scenario.name} (copy ${c}): ${statuses}\n${replies.map((r) => JSON.stringify(r.body)).join('\n')}\n${(error as Error).message}`,
          );
        }
      }),
    );
    // At most 60 races at a time: more would queue for the servers' database connections.
    const failures: string[] = [];
    for (let i = 0; i < jobs.length; i += 60) {
      const settled = await Promise.allSettled(jobs.slice(i, i + 60).map((job) => job()));
      failures.push(...settled.flatMap((s) => (s.status === 'rejected' ? [String(s.reason)] : [])));
    }
    // Which outcomes each race had (both orders are allowed; which ones happen depends on timing).
    process.stdout.write(
      `${[...outcomes].map(([name, seen]) => `${name}: ${[...seen].map(([s, n]) => `${s} ×${n}`).join(', ')}`).join('\n')}\n`,
    );
    expect(failures).toEqual([]);
  }, 60_000);

  /**
   * A seeded random mix of appends (after the current message, under a given message, as a new root,
   * under another session's message), message deletes, PATCHes of current_message_id and forks
   * (forks join the pool), some with an Idempotency-Key, many in flight at once through both processes. TREE_SEED replays the mix
   * (the seed is in every failure); the timing, and so which request wins each race, varies anyway.
   * Afterwards: every answer was one the contract allows for what else happened, every acknowledged
   * message is stored unless a 204 deleted it, and the trees and current messages are whole.
   */
  it('keeps every tree whole under a seeded random interleaving of appends, deletes, PATCHes and forks', async () => {
    const seed = Number(process.env.TREE_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = seededRandom(seed);
    const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
    const OPS = 400;
    const IN_FLIGHT = 24;

    const pool: string[] = [];
    /** Every message id the API gave out per session (appended or copied), deleted or not. */
    const known = new Map<string, number[]>();
    const sessionOf = new Map<number, string>();
    const deleted = new Map<number, number>(); // id → 204s
    const contentOf = new Map<number, string>();
    const learn = (sessionId: string, id: number, content: string) => {
      known.get(sessionId)!.push(id);
      sessionOf.set(id, sessionId);
      contentOf.set(id, content);
    };
    const problems: string[] = [];
    /** Refusals that are right only if the message they name was deleted by someone. */
    const needsDeleted: { id: number; what: string }[] = [];
    const patched: { sessionId: string; leaf: number }[] = [];
    const forks: { what: string; from: number | null; last: string | undefined }[] = [];
    const appended: {
      sessionId: string;
      id: number;
      asked: number | null | undefined;
      parent: number | null;
    }[] = [];

    for (let i = 0; i < 6; i++) {
      const id = await newSession(i);
      pool.push(id);
      known.set(id, []);
      for (let j = 0; j < 3; j++)
        learn(id, (await append(id, { content: `s${i}.${j}` }, j)).id, `s${i}.${j}`);
    }
    const small = new Set(pool.slice(0, 2)); // deleted from more than appended to: they empty out

    const kinds = ['append', 'under', 'root', 'foreign', 'delete', 'patch', 'fork'] as const;
    type Kind = (typeof kinds)[number];
    function chooseKind(sessionId: string): Kind {
      const weights = small.has(sessionId) ? [12, 8, 2, 3, 55, 12, 8] : [24, 20, 4, 4, 24, 16, 8];
      let x = random() * weights.reduce((a, b) => a + b);
      for (const [i, w] of weights.entries()) if ((x -= w) < 0) return kinds[i];
      return 'append';
    }
    /** A message of the session: mostly one not known to be deleted, sometimes any. */
    function target(sessionId: string): number | undefined {
      const all = known.get(sessionId)!;
      const live = all.filter((id) => !deleted.has(id));
      const from = live.length > 0 && random() < 0.85 ? live : all;
      return from.length > 0 ? pick(from) : undefined;
    }

    async function op(n: number): Promise<void> {
      const sessionId = pick(pool);
      let kind = chooseKind(sessionId);
      const server = base(Math.floor(random() * 2));
      const messageId = target(sessionId);
      if (messageId === undefined && ['under', 'delete', 'patch'].includes(kind)) kind = 'append';
      const say = (reply: Reply, allowed: string) =>
        problems.push(
          `op ${n} ${kind} on ${sessionId}: ${allowed}, got ${reply.status} ${JSON.stringify(reply.body)}`,
        );
      const path = messagesOf(sessionId);
      switch (kind) {
        case 'append':
        case 'under':
        case 'root':
        case 'foreign': {
          const other = pool.find((s) => s !== sessionId && known.get(s)!.length > 0);
          const asked =
            kind === 'under'
              ? messageId
              : kind === 'root'
                ? null
                : kind === 'foreign' && other !== undefined
                  ? pick(known.get(other)!)
                  : undefined;
          // Some with an Idempotency-Key: the append then runs as a transaction with the key's row.
          const keyed: Record<string, string> =
            random() < 0.2 ? { 'Idempotency-Key': `trees-${seed}-${n}` } : {};
          const reply = await call(
            server,
            'POST',
            path,
            { content: `op ${n}`, ...(asked === undefined ? {} : { parent_id: asked }) },
            keyed,
          );
          if (kind === 'foreign' && asked !== undefined) {
            if (!refusedFor(reply, 'parent_id')) say(reply, '400 naming parent_id');
          } else if (reply.status === 201) {
            const m = message(reply);
            learn(sessionId, m.id, m.content);
            appended.push({ sessionId, id: m.id, asked, parent: m.parent_id });
            if (m.session_id !== sessionId) say(reply, 'a message of the session');
          } else if (kind === 'under' && refusedFor(reply, 'parent_id')) {
            needsDeleted.push({ id: asked!, what: `op ${n}: 400 for parent_id ${asked}` });
          } else {
            say(reply, kind === 'under' ? '201 or 400 naming parent_id' : '201');
          }
          return;
        }
        case 'delete': {
          const reply = await call(server, 'DELETE', messageAt(sessionId, messageId!));
          if (reply.status === 204) deleted.set(messageId!, (deleted.get(messageId!) ?? 0) + 1);
          else if (reply.status === 404) {
            needsDeleted.push({ id: messageId!, what: `op ${n}: 404 deleting ${messageId}` });
          } else say(reply, '204 or 404');
          return;
        }
        case 'patch': {
          const reply = await call(server, 'PATCH', `${SESSIONS}/${sessionId}`, {
            current_message_id: messageId,
          });
          if (reply.status === 200) {
            patched.push({ sessionId, leaf: session(reply).current_message_id! });
          } else if (refusedFor(reply, 'current_message_id')) {
            needsDeleted.push({
              id: messageId!,
              what: `op ${n}: 400 for current_message_id ${messageId}`,
            });
          } else say(reply, '200 or 400 naming current_message_id');
          return;
        }
        case 'fork': {
          const at = random() < 0.5 ? target(sessionId) : undefined;
          const reply = await call(
            server,
            'POST',
            `${SESSIONS}/${sessionId}/fork`,
            at === undefined ? {} : { message_id: at },
            random() < 0.3 ? { 'Idempotency-Key': `trees-${seed}-${n}` } : {},
          );
          if (reply.status === 201) {
            const fork = session(reply);
            // Nobody else knows the fork yet: its branch is its whole tree.
            const branch = await call(
              server,
              'GET',
              `${messagesOf(fork.id)}?branch=current&limit=1000`,
            );
            const branchRows = branch.body as unknown as MessageBody[];
            const copies = branchRows.map((m) => m.id);
            if (
              fork.current_message_id !== (copies.at(-1) ?? null) ||
              fork.message_count !== copies.length
            ) {
              say(reply, `a fork whose current branch (${copies.join()}) is its tree`);
            }
            forks.push({
              what: `op ${n}: fork ${fork.id} of ${sessionId}`,
              from: fork.forked_from?.message_id ?? null,
              last: branchRows.at(-1)?.content,
            });
            known.set(fork.id, []);
            for (const m of branchRows) learn(fork.id, m.id, m.content);
            if (pool.length < 10) pool.push(fork.id);
          } else if (at !== undefined && refusedFor(reply, 'message_id')) {
            needsDeleted.push({ id: at, what: `op ${n}: 400 for fork message_id ${at}` });
          } else say(reply, at === undefined ? '201' : '201 or 400 naming message_id');
          return;
        }
      }
    }

    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < OPS) await op(next++);
      }),
    );

    // Every refusal is explained by a deletion; each message was deleted (204) at most once.
    for (const { id, what } of needsDeleted) {
      if (!deleted.has(id)) problems.push(`${what}, which no DELETE removed`);
    }
    for (const [id, n] of deleted) if (n > 1) problems.push(`message ${id} deleted ${n} times`);
    // The answers named messages of their session.
    for (const { sessionId, id, asked, parent } of appended) {
      if (asked !== undefined && parent !== asked)
        problems.push(`message ${id} answered parent ${parent}, asked ${asked}`);
      if (parent !== null && sessionOf.get(parent) !== sessionId)
        problems.push(`message ${id} answered parent ${parent} of another session`);
    }
    // Each fork's copies end with a copy of the message its forked_from names (none from an empty
    // session): it copied one state of the source's tree.
    for (const { what, from, last } of forks) {
      if ((from === null ? undefined : contentOf.get(from)) !== last) {
        problems.push(`${what} names message ${from} but its copies end with "${last}"`);
      }
    }
    for (const { sessionId, leaf } of patched) {
      if (sessionOf.get(leaf) !== sessionId)
        problems.push(`PATCH of ${sessionId} answered ${leaf}, not one of its messages`);
    }
    // In the database: exactly the acknowledged messages that no 204 deleted, each in its session.
    // (The earlier tests' sessions share the database.)
    const stored = (await storedMessages()).filter((m) => known.has(m.session_id));
    const storedIds = new Map(stored.map((m) => [m.id, m.session_id]));
    for (const [id, sessionId] of sessionOf) {
      if (deleted.has(id)) {
        if (storedIds.has(id)) problems.push(`message ${id} is stored after a 204 deleted it`);
      } else if (storedIds.get(id) !== sessionId) {
        problems.push(`acknowledged message ${id} of ${sessionId} is missing`);
      }
    }
    for (const id of storedIds.keys())
      if (!sessionOf.has(id)) problems.push(`message ${id} was never acknowledged`);

    const invariants = [
      ...(await invariantViolations(readerOf(db), { messagesDeleted: true })),
      ...(await treeViolations(readerOf(db), { ordered: true })),
    ];
    // An append without parent_id answered as a root found its session empty (current null).
    const emptied = appended.filter((a) => a.asked === undefined && a.parent === null).length;
    process.stdout.write(
      `TREE_SEED=${seed}: ${OPS} operations over ${pool.length} sessions, ${deleted.size} messages deleted, ${stored.length} stored, ${needsDeleted.length} refusals, ${emptied} appends to an emptied session\n`,
    );
    expect({ seed, problems, invariants }).toEqual({ seed, problems: [], invariants: [] });
  }, 60_000);

  /** The checks above can fail: broken trees written straight into the database are reported. */
  it('reports a broken tree, and the database refuses a parent in another session', async () => {
    const [a, b] = [await newSession(0), await newSession(1)];
    const [a1, a2] = [await append(a, { content: 'a1' }), await append(a, { content: 'a2' })];
    const b1 = await append(b, { content: 'b1' });
    const reader = readerOf(db);
    /** A statement with `?` placeholders, numbered for PostgreSQL. */
    const run = (text: string, params: unknown[]) => {
      let n = 0;
      return db.query(onPostgres ? text.replace(/\?/g, () => `$${++n}`) : text, params);
    };
    try {
      // A parent in another session: the composite foreign key refuses it.
      await expect(
        run(`UPDATE "chat_messages" SET "parent_id" = ? WHERE "id" = ?`, [b1.id, a2.id]),
      ).rejects.toThrow();
      // A current message of another session, one on a non-empty session set to null, a cycle.
      await run(`UPDATE "sessions" SET "current_message_id" = ? WHERE "id" = ?`, [b1.id, a]);
      await run(`UPDATE "sessions" SET "current_message_id" = NULL WHERE "id" = ?`, [b]);
      await run(`UPDATE "chat_messages" SET "parent_id" = ? WHERE "id" = ?`, [a2.id, a1.id]);
      expect(await invariantViolations(reader, { messagesDeleted: true })).toEqual(
        expect.arrayContaining([
          `current_message_id of session ${a} is not one of its messages`,
          `current_message_id of session ${b} is not one of its messages`,
        ]),
      );
      expect(await treeViolations(reader, { ordered: true })).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/is on a cycle of parent links/),
          `message ${a1.id} is older than its parent ${a2.id}`,
        ]),
      );
    } finally {
      // Through the API, which keeps the session counts: the messages go with their sessions.
      for (const id of [a, b])
        expect((await call(base(0), 'DELETE', `${SESSIONS}/${id}`)).status).toBe(204);
    }
  });
});
