import fc from 'fast-check';

/**
 * fast-check arbitraries for the fuzz e2e files: hostile text, JSON values, request bodies near the
 * contract's limits, encodings, headers, ids and query strings.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Strings people and attackers send: empty, blank, control and format characters, injections. */
const nastyString = fc.constantFrom(
  '',
  ' ',
  '  padded  ',
  '\t\n',
  '\u0000',
  'a\u0000b',
  'null',
  'undefined',
  'true',
  '0',
  '-1',
  '1e309',
  'NaN',
  '__proto__',
  'constructor',
  'hasOwnProperty',
  "'; DROP TABLE sessions; --",
  '" OR 1=1 --',
  '%',
  '%00',
  '%zz',
  '../..',
  '\u202eevil',
  '\ufeffbom',
  '😀',
  '\ud83d',
  'a\udc00b',
  'e\u0301',
  '<script>alert(1)</script>',
  '${jndi:ldap://x}',
  '{{7*7}}',
  'x'.repeat(64),
  'x'.repeat(65),
  'x'.repeat(200),
  'x'.repeat(201),
  'x'.repeat(513),
  'y'.repeat(5000),
);

/** Any UTF-16 code unit: half of a surrogate pair included. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

export const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: codeUnit, maxLength: 24 }) },
  { weight: 3, arbitrary: nastyString },
);

/**
 * Text stored as is (names and message contents) holding half of a surrogate pair is refused with a
 * 400 (it is not Unicode, and UTF-8 storage could not keep it; see "Regressions"): the generators
 * of valid bodies leave it out.
 */
export const LONE_SURROGATE =
  /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const storable = (value: unknown) => typeof value !== 'string' || !LONE_SURROGATE.test(value);

export const jsonValue: fc.Arbitrary<Json> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.jsonValue({ maxDepth: 3, stringUnit: codeUnit }),
) as fc.Arbitrary<Json>;
export const jsonObject = fc.dictionary(text, jsonValue, { maxKeys: 6 });

/** A JSON value nested `depth` levels deep (objects and arrays alternating). */
const deepValue = fc
  .tuple(fc.integer({ min: 10, max: 40 }), fc.boolean())
  .map(([depth, arrays]) => {
    let value: Json = 1;
    for (let i = 0; i < depth; i++) value = arrays && i % 2 ? [value] : { k: value };
    return value;
  });

/** One field replaced by something near-valid or hostile. */
const oddValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: text },
  { weight: 2, arbitrary: jsonValue },
  { weight: 1, arbitrary: deepValue },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Json>(null, true, false, 0, -1, 1.5, 1e308, '', [], {}),
  },
);

/** Valid text for a field that takes any characters: every kind of Unicode, hostile or not. */
const anyText = (minLength: number, maxLength: number) =>
  fc.oneof(
    fc.string({ unit: 'grapheme', minLength, maxLength }),
    fc.string({ unit: 'binary', minLength, maxLength }),
    fc.string({ unit: codeUnit, minLength, maxLength }),
    nastyString.filter((v) => v.length >= minLength && v.length <= maxLength),
  );

const validName = fc.oneof(
  anyText(1, 40),
  fc.constantFrom('Trip planning', '  trimmed  ', 'x'.repeat(200), 'émoji 😀'),
);
const validRagIds = fc.array(anyText(1, 30), { maxLength: 5 });
const validTags = fc.dictionary(
  anyText(1, 20).filter((k) => k !== '__proto__'),
  anyText(0, 30),
  { maxKeys: 5 },
);

export const sessionFields = {
  name: fc.option(validName),
  rag_document_ids: fc.option(validRagIds),
  metadata_tags: fc.option(validTags),
  archived: fc.boolean(),
  pinned: fc.boolean(),
};

export const validSessionBody = fc.record(sessionFields, { requiredKeys: [] });

/** Leaves out bodies with half a surrogate pair in stored text: refused with a 400 (see `storable`). */
export function storableOnly<T>(body: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return body.filter((value) => {
    if (value === null || typeof value !== 'object') return true;
    const fields = value as Record<string, unknown>;
    return storable(fields.name) && storable(fields.content);
  });
}

export const validMessageBody = fc.record(
  {
    content: fc.oneof(
      anyText(1, 200),
      fc.constantFrom(' ', '\n', '  keep whitespace  ', 'z'.repeat(100_000)),
    ),
    role: fc.constantFrom('user', 'assistant', 'system'),
    metadata: fc.option(jsonObject),
  },
  { requiredKeys: ['content'] },
);

/** A valid body with one field broken, one unknown field added, or a required one removed. */
export function nearValid(valid: fc.Arbitrary<Record<string, unknown>>, fields: string[]) {
  return fc.oneof(
    fc
      .tuple(valid, fc.constantFrom(...fields), oddValue)
      .map(([body, field, value]) => ({ ...body, [field]: value })),
    fc.tuple(valid, text, jsonValue).map(([body, key, value]) => ({ ...body, [key]: value })),
    fc.tuple(valid, fc.constantFrom(...fields)).map(([body, field]) => {
      const copy = { ...body };
      delete copy[field];
      return copy;
    }),
  );
}

/** How the body travels: mostly as JSON, sometimes broken on the way. */
export type Encoding =
  'json' | 'truncated' | 'trailing' | 'bom' | 'latin1' | 'invalid-utf8' | 'empty' | 'chunked';

export const encoding = fc.oneof(
  { weight: 18, arbitrary: fc.constant<Encoding>('json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom<Encoding>(
      'truncated',
      'trailing',
      'bom',
      'latin1',
      'invalid-utf8',
      'empty',
      'chunked',
    ),
  },
);

/** A body given as JSON text, for what JSON.stringify cannot write (duplicate keys, 1e400). */
export class JsonText {
  constructor(readonly text: string) {}
}

export const rawMessageBody = fc
  .constantFrom(
    '{"content":"x","metadata":{"n":12345678901234567890}}',
    '{"content":"x","metadata":{"n":1.0,"m":1E2,"z":-0}}',
    '{"content":"x","metadata":{"a":1,"a":2}}',
    '{"content":"x","content":"y"}',
    '{"content":"x","metadata":{"k":"\\udfff"}}',
    '{"content":"x","metadata":{"\\u0000":"nul key"}}',
    '{"content":"x","metadata":{"__proto__":{"polluted":true}}}',
    '{"content":"x","metadata":{"constructor":{"prototype":{"polluted":true}}}}',
    '{"content":"x","role":"user","role":"admin"}',
    '{"content":"x"}\n',
    ' {"content":"x"} ',
  )
  .map((body) => new JsonText(body));

export function encode(value: unknown, how: Encoding): { body?: Buffer; chunked?: boolean } {
  const json = value instanceof JsonText ? value.text : (JSON.stringify(value) ?? 'null');
  switch (how) {
    case 'json':
      return { body: Buffer.from(json) };
    case 'chunked':
      return { body: Buffer.from(json), chunked: true };
    case 'truncated':
      return { body: Buffer.from(json.slice(0, Math.max(0, json.length - 2))) };
    case 'trailing':
      return { body: Buffer.from(`${json} }garbage`) };
    case 'bom':
      return { body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]) };
    case 'latin1':
      return { body: Buffer.from(json, 'latin1') };
    case 'invalid-utf8':
      return {
        body: Buffer.concat([
          Buffer.from(json.slice(0, -1)),
          Buffer.from([0xc3, 0x28, 0xff]),
          Buffer.from('}'),
        ]),
      };
    case 'empty':
      return { body: Buffer.alloc(0) };
  }
}

/** What the server may have parsed from the body: undefined when it is not valid JSON text. */
export function parsedBody(body: Buffer | undefined): unknown {
  if (!body || body.length === 0) return {};
  try {
    const decoded = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(body);
    // -0 and 0 are one JSON number (the server answers 0, as JSON.stringify writes it).
    return JSON.parse(decoded, (_, value: unknown) =>
      Object.is(value, -0) ? 0 : value,
    ) as unknown;
  } catch {
    return undefined;
  }
}

export const contentType = fc.oneof(
  { weight: 16, arbitrary: fc.constant<string | undefined>('application/json') },
  {
    weight: 4,
    arbitrary: fc.constantFrom<string | undefined>(
      undefined,
      'application/json; charset=utf-8',
      'application/json; charset=UTF-8',
      'APPLICATION/JSON',
      'application/merge-patch+json',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/json; charset=nope',
      'application/jsonp',
      'text/plain',
      'text/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      '',
      '*/*',
      'application/json; boundary=;;;',
    ),
  },
);

const headerText = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});

const extraHeaders = fc.dictionary(
  fc.constantFrom(
    'x-request-id',
    'accept',
    'accept-encoding',
    'accept-language',
    'accept-charset',
    'origin',
    'idempotency-key',
    'authorization',
    'cookie',
    'range',
    'if-none-match',
    'if-modified-since',
    'x-forwarded-for',
    'x-forwarded-proto',
    'x-http-method-override',
    'content-encoding',
    'content-language',
    // 'expect' is left out until the bare 417 is fixed (see "Regressions" below).
    'user-agent',
    'referer',
  ),
  fc.oneof(
    headerText,
    fc.constantFrom(
      '*/*',
      'text/html',
      'application/problem+json;q=0.1',
      'gzip, br',
      'gzip',
      'deflate',
      'br',
      'identity',
      'compress',
      'bytes=0-10',
      '*',
      'W/"x"',
      '127.0.0.1, 10.0.0.1',
      'DELETE',
      'PUT',
      'Bearer x',
      'x'.repeat(4000),
      'caf\u00e9',
    ),
  ),
  { maxKeys: 3 },
);

/** A session id: one that exists (by position), one that does not, or something else entirely. */
export type IdChoice =
  | { kind: 'existing'; index: number; upper?: boolean }
  | { kind: 'unknown'; value: string }
  | { kind: 'raw'; value: string };

export const idChoice: fc.Arbitrary<IdChoice> = fc.oneof(
  { weight: 9, arbitrary: fc.nat(20).map((index) => ({ kind: 'existing' as const, index })) },
  {
    weight: 1,
    arbitrary: fc.nat(20).map((index) => ({ kind: 'existing' as const, index, upper: true })),
  },
  { weight: 2, arbitrary: fc.uuid().map((value) => ({ kind: 'unknown' as const, value })) },
  {
    weight: 3,
    arbitrary: fc.oneof(
      text.map((value) => ({ kind: 'unknown' as const, value })),
      fc
        .constantFrom(
          '%',
          '%zz',
          '%E0%A4%A',
          '%00',
          '%2F',
          '%2e%2e',
          '..',
          '.',
          ';x',
          '@',
          "!$&'()*+,;=",
          '%F0%9F%98%80',
          'a%20b',
        )
        .map((value) => ({ kind: 'raw' as const, value })),
    ),
  },
);

/** A message id: one of this session's, another session's, or near-valid / hostile text. */
export type MessageIdChoice =
  | { kind: 'own'; index: number }
  | { kind: 'foreign'; index: number }
  | { kind: 'text'; value: string };

export const messageIdChoice: fc.Arbitrary<MessageIdChoice> = fc.oneof(
  { weight: 5, arbitrary: fc.nat(20).map((index) => ({ kind: 'own' as const, index })) },
  { weight: 2, arbitrary: fc.nat(20).map((index) => ({ kind: 'foreign' as const, index })) },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        fc.constantFrom(
          '0',
          '-1',
          '1.5',
          '1e3',
          '01',
          '0x1',
          ' 1',
          '+1',
          '99999999999999999999',
          '9007199254740993',
          '1 ',
          'NaN',
        ),
        text,
      )
      .map((value) => ({ kind: 'text' as const, value })),
  },
);

const queryValue = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -2, max: 1002 }).map(String) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '0',
      '1',
      '50',
      '1000',
      '1001',
      '',
      ' 1',
      '1.0',
      '1e2',
      '0x10',
      '-0',
      '9'.repeat(20),
      'true',
      'false',
      'any',
      'asc',
      'desc',
      'DESC',
      'null',
    ),
  },
  { weight: 2, arbitrary: text },
);

/** A query string over `names`: values repeated, bracketed, encoded or raw, plus unknown parameters. */
export function queryString(names: string[], special: fc.Arbitrary<[string, string]>[] = []) {
  const pair = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...names), queryValue) },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constantFrom(...names).map((n) => `${n}[a]`),
        queryValue,
      ),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constantFrom(...names).map((n) => `${n}[]`),
        queryValue,
      ),
    },
    { weight: 1, arbitrary: fc.tuple(text, queryValue) },
    ...special.map((arbitrary) => ({ weight: 3, arbitrary })),
  );
  return fc
    .tuple(fc.array(pair, { maxLength: 4 }), fc.boolean())
    .map(([pairs, raw]) =>
      pairs
        .map(([k, v]) =>
          raw && /^[\w.[\]-]*$/.test(k + v)
            ? `${k}=${v}`
            : `${encodeSegment(k)}=${encodeSegment(v)}`,
        )
        .join('&'),
    );
}

export interface Extras {
  contentType: string | undefined;
  headers: Record<string, string>;
  encoding: Encoding;
}

export const extras: fc.Arbitrary<Extras> = fc.record({
  contentType,
  headers: extraHeaders,
  encoding,
});

/** encodeURIComponent, which throws on half of a surrogate pair; that is sent as U+FFFD's bytes. */
export function encodeSegment(value: string): string {
  return encodeURIComponent(Buffer.from(value).toString());
}

// ---------------------------------------------------------------------------------------------
// Import files (fuzz-import). Choices that depend on the store (taken ids) are resolved when the
// file is sent.

/** Text of every kind: valid, at the limits, and what importText columns cannot hold. */
const hostileText = fc.constantFrom(
  '',
  ' ',
  'plain',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'a\udc00b',
  '😀',
  'ß ﬃ İ ΐ', // grow when upper-cased or normalised
  '\u202eevil',
  '\ufeffbom',
  'e\u0301',
  '𝔘'.repeat(200),
  'x'.repeat(200),
  'x'.repeat(201),
);
/**
 * Mostly `valid`, now and then `hostile`: a importFile has a dozen fields or more, and most files should
 * get through to the checks a 201 is held to.
 */
function sometimes<T>(valid: fc.Arbitrary<T>, hostile: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ weight: 30, arbitrary: valid }, { weight: 1, arbitrary: hostile });
}

const importText = sometimes(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((v) => v.trim() !== ''),
  fc.oneof(hostileText, fc.string({ unit: 'binary', maxLength: 20 })),
);

type ImportIdChoice =
  | { kind: 'value'; value: Json }
  | { kind: 'taken'; index: number }
  | { kind: 'above'; offset: number };

export const messageId: fc.Arbitrary<ImportIdChoice> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<Json>(
        0,
        -1,
        1.5,
        Number.MAX_SAFE_INTEGER,
        999_999_999_999_999,
        1e15,
        1e300,
        null,
        '7',
      )
      .map((value) => ({ kind: 'value' as const, value })),
  },
  { weight: 2, arbitrary: fc.nat(50).map((index) => ({ kind: 'taken' as const, index })) },
  {
    weight: 4,
    arbitrary: fc
      .oneof(fc.integer({ min: 1, max: 1000 }), fc.constantFrom(1_000_000, 1_000_050, 5_000_000))
      .map((offset) => ({ kind: 'above' as const, offset })),
  },
);

type SessionIdChoice =
  | { kind: 'fresh'; value: string }
  | { kind: 'mine' | 'theirs'; index: number }
  | { kind: 'value'; value: Json };

export const sessionId: fc.Arbitrary<SessionIdChoice> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.uuid({ version: 4 }).map((value) => ({ kind: 'fresh' as const, value })),
  },
  { weight: 2, arbitrary: fc.nat(20).map((index) => ({ kind: 'mine' as const, index })) },
  { weight: 3, arbitrary: fc.nat(20).map((index) => ({ kind: 'theirs' as const, index })) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<Json>('abc', '', 42, null, 'AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA')
      .map((value) => ({ kind: 'value' as const, value })),
  },
);

const NOW = Date.now();
export const iso = fc.oneof(
  {
    weight: 60,
    arbitrary: fc
      .integer({ min: Date.UTC(2020, 0, 1), max: NOW })
      .map((ms) => new Date(ms).toISOString()),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Json>(
      '9999-12-31T23:59:59.999Z',
      '1969-12-31T23:59:59.999Z',
      '0000-01-01T00:00:00.000Z',
      '2025-02-29T00:00:00.000Z',
      '2025-01-01T24:00:00Z',
      '2025-01-01T10:00+02:00',
      '+275760-09-13T00:00:00.000Z',
      new Date(NOW + 3_600_000).toISOString(),
      'yesterday',
      1714550400,
      null,
    ),
  },
);

export const seconds = fc.oneof(
  { weight: 60, arbitrary: fc.integer({ min: 1_600_000_000, max: Math.floor(NOW / 1000) }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Json>(0, -1, 1e13, 1e300, 1714550400.5, null, '1714550400'),
  },
);

export const metadata = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Json>(null) },
  {
    weight: 3,
    arbitrary: fc.dictionary(importText, fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>, {
      maxKeys: 3,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Json>(
      [1],
      'importText',
      { pad: 'p'.repeat(16_370) },
      { pad: 'p'.repeat(16_400) },
      { '\u0000': '\ud800' },
    ),
  },
);

interface MessageSpec {
  id: ImportIdChoice | undefined;
  timestamp: Json;
  role: Json;
  content: Json;
  metadata: Json;
}

export const message: fc.Arbitrary<MessageSpec> = fc.record({
  id: fc.option(messageId, { nil: undefined }),
  timestamp: iso,
  role: fc.oneof(
    { weight: 60, arbitrary: fc.constantFrom<Json>('user', 'assistant', 'system') },
    { weight: 1, arbitrary: fc.constantFrom<Json>('tool', null, '') },
  ),
  content: fc.oneof(
    { weight: 50, arbitrary: importText },
    { weight: 1, arbitrary: fc.constantFrom<Json>('c'.repeat(100_000), 'c'.repeat(100_001), 7) },
  ),
  metadata,
});

const exportedSession = fc.record({
  id: sessionId,
  name: fc.oneof(importText, fc.constant<Json>(null)),
  created_at: iso,
  last_updated_at: iso,
  llm_model_name: fc.oneof(importText, fc.constant<Json>(null)),
  rag_document_ids: fc.oneof(fc.constant<Json>(null), fc.array(importText, { maxLength: 3 })),
  metadata_tags: sometimes(
    fc.oneof(fc.constant<Json>(null), fc.dictionary(importText, importText, { maxKeys: 3 })),
    fc.constantFrom<Json>({ k: 1 }, { ['k'.repeat(65)]: 'v' }),
  ),
  archived: sometimes<Json>(fc.boolean(), fc.constantFrom<Json>('yes', null)),
  pinned: fc.boolean(),
  messages: fc.array(message, { maxLength: 4 }),
});

export const conversation = fc.record({
  key: fc.oneof(fc.uuid({ version: 4 }), importText),
  title: fc.oneof(importText, fc.constant<Json>(null)),
  create_time: seconds,
  update_time: seconds,
  model: fc.oneof(importText, fc.constant<Json>(null)),
  turns: fc.array(
    fc.record({
      id: sometimes(importText, fc.constantFrom('n'.repeat(200), 'n'.repeat(20_000))),
      role: fc.constantFrom('user', 'assistant', 'system', 'tool'),
      time: seconds,
      parts: fc.array(
        sometimes<Json>(importText, fc.constantFrom<Json>('c'.repeat(100_001), 3, null)),
        {
          maxLength: 2,
        },
      ),
      slug: sometimes<Json>(
        fc.oneof(fc.constant<Json>(null), importText),
        fc.constant<Json>('s'.repeat(201)),
      ),
    }),
    { minLength: 1, maxLength: 3 },
  ),
});

export const importFile = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: exportedSession.map((s) => ({ kind: 'export' as const, s })) },
    { weight: 2, arbitrary: conversation.map((c) => ({ kind: 'chatgpt' as const, c })) },
  ),
  { minLength: 1, maxLength: 3 },
);

type FileSpec = fc.Arbitrary<typeof importFile extends fc.Arbitrary<infer T> ? T : never>;
export type ImportEntry = FileSpec extends fc.Arbitrary<(infer E)[]> ? E : never;

// ---------------------------------------------------------------------------------------------
// Path spellings (fuzz-paths)

export const percent = (char: string) =>
  `%${char.charCodeAt(0).toString(16).padStart(2, '0')}`.toUpperCase();

/** One way of spelling a path differently; applied at a generated position. */
type Mutation = (path: string, at: number) => string;
const mutations: Record<string, Mutation> = {
  upper: (p, at) => p.slice(0, at) + p.charAt(at).toUpperCase() + p.slice(at + 1),
  lowerCaseFlip: (p, at) =>
    p.slice(0, at) +
    (p.charAt(at) === p.charAt(at).toUpperCase()
      ? p.charAt(at).toLowerCase()
      : p.charAt(at).toUpperCase()) +
    p.slice(at + 1),
  percentEncode: (p, at) =>
    p.charAt(at) === '/' || p.charAt(at) === '?'
      ? p
      : p.slice(0, at) + percent(p.charAt(at)) + p.slice(at + 1),
  percentEncodeLower: (p, at) =>
    p.charAt(at) === '/' || p.charAt(at) === '?'
      ? p
      : p.slice(0, at) + percent(p.charAt(at)).toLowerCase() + p.slice(at + 1),
  doubleSlash: (p, at) => {
    const slash = p.indexOf('/', at);
    return slash === -1 ? `${p}/` : `${p.slice(0, slash)}/${p.slice(slash)}`;
  },
  encodedSlash: (p, at) => {
    const slash = p.indexOf('/', Math.max(at, 1));
    return slash === -1 ? p : `${p.slice(0, slash)}%2F${p.slice(slash + 1)}`;
  },
  dotSegment: (p, at) => {
    const slash = p.indexOf('/', at);
    return slash === -1 ? `${p}/.` : `${p.slice(0, slash)}/.${p.slice(slash)}`;
  },
  dotDotSegment: (p, at) => {
    const slash = p.indexOf('/', at);
    return slash === -1 ? `${p}/x/..` : `${p.slice(0, slash)}/x/..${p.slice(slash)}`;
  },
  encodedDot: (p, at) => {
    const slash = p.indexOf('/', at);
    return slash === -1 ? `${p}/%2e` : `${p.slice(0, slash)}/%2e${p.slice(slash)}`;
  },
  trailingDot: (p) => p.replace(/(\?|$)/, '.$1'),
  trailingSlashes: (p) => p.replace(/(\?|$)/, '//$1'),
  trailingSlash: (p) => p.replace(/(\?|$)/, '/$1'),
  backslash: (p, at) => {
    const slash = p.indexOf('/', Math.max(at, 1));
    return slash === -1 ? p : `${p.slice(0, slash)}\\${p.slice(slash + 1)}`;
  },
  semicolon: (p, at) => {
    const slash = p.indexOf('/', at + 1);
    return slash === -1 ? `${p};x` : `${p.slice(0, slash)};x${p.slice(slash)}`;
  },
  nul: (p, at) => `${p.slice(0, at)}%00${p.slice(at)}`,
};

export const spelling = fc.tuple(
  fc.nat(),
  fc.array(fc.tuple(fc.constantFrom(...Object.keys(mutations)), fc.nat({ max: 200 })), {
    minLength: 1,
    maxLength: 4,
  }),
);

export function spell(path: string, steps: [string, number][]): string {
  let spelled = path;
  for (const [name, at] of steps) {
    const query = spelled.indexOf('?');
    const pathEnd = query === -1 ? spelled.length : query;
    spelled = mutations[name](spelled, at % Math.max(pathEnd, 1));
  }
  return spelled;
}

// ---------------------------------------------------------------------------------------------
// Text that grows when normalised or case-mapped (fuzz-unicode)

/** Characters that grow under NFKD or case folding, with the words around them. */
const EXPANDERS = [
  '\u3316', // ㌖ → キロメートル
  '\u3317', // ㌗ → キロワット
  '\u3320', // ㌠ → サンチーム
  '\u337f', // ㍿ → 株式会社
  '\ufdfa', // ﷺ → 18 code points, three spaces among them
  '\ufdfb', // ﷻ → جل جلاله
  '\ufb03', // ﬃ → ffi
  '\ufb01', // ﬁ → fi
  '\u0390', // ΐ → ι with two accents (removed)
  '\u1e9e', // ẞ → ß (lower case)
  '\u0149', // ŉ → ʼn
  '\u01c4', // Ǆ → DŽ
  '\u2474', // ⑴ → (1)
  '\u33c2', // ㏂ → a.m.
  '\u3250', // ㉐ → PTE
  '\u32cc', // ㋌ → Hg
  '\u2177', // ⅷ → viii
  '\ud83c\udd10', // 🄐 → (A)
  '\uff21', // Ａ → A
  '\uff4d', // ｍ → m
  '\uac01', // 각 → three jamo
  '\u0130', // İ → i̇ (lower case)
  ' ',
];
export const MARKER = 'needle';

/** A deterministic text of `length` UTF-16 units drawn from EXPANDERS with `seed`. */
export function expandingText(seed: number, length: number): string {
  let state = seed >>> 0 || 1;
  const pieces: string[] = [];
  let size = 0;
  for (;;) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const piece = EXPANDERS[state % EXPANDERS.length];
    if (size + piece.length > length) break;
    pieces.push(piece);
    size += piece.length;
  }
  return pieces.join('');
}

/** `text` with the marker word at `at` (0–1 of the way through), the whole within `max` units. */
export function withMarker(text: string, at: number, max: number): string {
  const room = max - MARKER.length - 2;
  // Never between the two halves of a surrogate pair.
  const cut = text.slice(0, room).replace(/[\ud800-\udbff]$/, '');
  let i = Math.floor(cut.length * at);
  if (/[\udc00-\udfff]/.test(cut[i] ?? '')) i -= 1;
  return `${cut.slice(0, i)} ${MARKER} ${cut.slice(i)}`;
}
