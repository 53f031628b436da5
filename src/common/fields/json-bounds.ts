import { registerDecorator, ValidationOptions } from 'class-validator';

export type JsonValue =
  string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * Depth of a parsed JSON value, measured without recursion so a hostile body cannot exhaust the
 * stack: a scalar is 0 levels, `{}` and `[]` are 1, `{"a": {}}` is 2.
 */
export function jsonDepth(value: unknown, stopAt = Infinity): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    const level = depth + 1;
    if (level > deepest) {
      deepest = level;
      if (deepest > stopAt) return deepest;
    }
    for (const child of Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, level]);
    }
  }
  return deepest;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export const METADATA_MAX_BYTES = 16 * 1024;
export const METADATA_MAX_DEPTH = 16;

/** Numbers JSON cannot carry back (`1e400` parses as Infinity and would be stored as null). */
function hasNonFiniteNumber(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node === 'number' && !Number.isFinite(node)) return true;
    if (node !== null && typeof node === 'object')
      stack.push(...(Object.values(node) as unknown[]));
  }
  return false;
}

/** Why `value` is not a bounded JSON object; `null` when it is one. */
export function jsonObjectProblem(
  property: string,
  value: unknown,
  bounds: { maxBytes: number; maxDepth: number },
): string | null {
  if (!isPlainObject(value)) return `${property} must be a JSON object`;
  if (jsonDepth(value, bounds.maxDepth) > bounds.maxDepth) {
    return `${property} must be at most ${bounds.maxDepth} levels deep`;
  }
  if (hasNonFiniteNumber(value)) {
    return `${property} holds a number too large for JSON to store exactly`;
  }
  if (Buffer.byteLength(JSON.stringify(value)) > bounds.maxBytes) {
    return `${property} must be at most ${bounds.maxBytes} bytes serialized`;
  }
  return null;
}

/**
 * A free-form JSON object of bounded size (serialized UTF-8 bytes) and nesting depth, whose
 * numbers are finite (so it reads back exactly as sent).
 */
export function IsBoundedJsonObject(
  bounds: { maxBytes: number; maxDepth: number },
  options?: ValidationOptions,
): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    registerDecorator({
      name: 'isBoundedJsonObject',
      target: target.constructor,
      propertyName: String(propertyName),
      options,
      validator: {
        validate: (value: unknown) => jsonObjectProblem('', value, bounds) === null,
        defaultMessage: (args) =>
          jsonObjectProblem(args?.property ?? 'value', args?.value, bounds) ??
          'invalid JSON object',
      },
    });
  };
}

export const TAGS_MAX_KEYS = 16;
export const TAG_KEY_MAX = 64;
export const TAG_VALUE_MAX = 512;

/** Why `value` is not valid session tags, naming the offending key; `null` when it is valid. */
export function metadataTagsProblem(value: unknown): string | null {
  if (!isPlainObject(value)) return 'metadata_tags must be an object of string values';
  const entries = Object.entries(value);
  if (entries.length > TAGS_MAX_KEYS) {
    return `metadata_tags has ${entries.length} keys; at most ${TAGS_MAX_KEYS} are allowed`;
  }
  for (const [key, tag] of entries) {
    if ([...key].length < 1 || [...key].length > TAG_KEY_MAX) {
      return `metadata_tags key '${key.slice(0, 80)}' must be 1 to ${TAG_KEY_MAX} characters long`;
    }
    if (typeof tag !== 'string' || [...tag].length > TAG_VALUE_MAX) {
      return `metadata_tags['${key}'] must be a string of at most ${TAG_VALUE_MAX} characters`;
    }
  }
  return null;
}

/** Session tags: at most 16 keys of 1–64 characters, string values of at most 512 characters. */
export function IsMetadataTags(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    registerDecorator({
      name: 'isMetadataTags',
      target: target.constructor,
      propertyName: String(propertyName),
      options,
      validator: {
        validate: (value: unknown) => metadataTagsProblem(value) === null,
        defaultMessage: (args) => metadataTagsProblem(args?.value) ?? 'invalid metadata_tags',
      },
    });
  };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Text a text column stores exactly: no U+0000, no unpaired surrogate. */
export function isStorableText(text: string): boolean {
  return !text.includes('\u0000') && !LONE_SURROGATE.test(text);
}

const UNSTORABLE = new RegExp(`\u0000|${LONE_SURROGATE.source}`, 'g');

/** `text` with what isStorableText refuses (U+0000, unpaired surrogates) turned into U+FFFD. */
export function toStorableText(text: string): string {
  return text.replace(UNSTORABLE, '\ufffd');
}

/**
 * Text columns refuse U+0000 (PostgreSQL cannot store it in text, and both databases must accept the
 * same input) and unpaired UTF-16 surrogates (not Unicode: UTF-8 storage would turn them into
 * U+FFFD, so the text would not read back as sent). JSON fields escape both, so metadata may hold them.
 * With `{ each: true }` it checks every item of an array.
 */
export function StorableText(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    registerDecorator({
      name: 'storableText',
      target: target.constructor,
      propertyName: String(propertyName),
      options,
      validator: {
        validate: (value: unknown) => typeof value !== 'string' || isStorableText(value),
        defaultMessage: (args) =>
          `${options?.each ? 'each of ' : ''}${args?.property} must be valid Unicode text without NUL (U+0000) characters`,
      },
    });
  };
}

/**
 * The largest message id the API hands out: `GET …/messages/{id}` takes 1–15 digits, and every id
 * up to here is exact in a JSON number (a double). An id beyond it is never stored or answered.
 */
export const MESSAGE_ID_MAX = 999_999_999_999_999;

/** A message id as a driver returned it (PostgreSQL: BIGINT as text), checked to be exact and fetchable. */
export function exactMessageId(value: unknown): number | null {
  const text = typeof value === 'bigint' ? value.toString() : String(value);
  return /^[1-9]\d{0,14}$/.test(text) ? Number(text) : null;
}

/** The first and last instants the contract's format (ISO 8601, 4-digit year, `Z`) can write. */
export const TIME_FORMAT_MIN_MS = Date.parse('0000-01-01T00:00:00.000Z');
export const TIME_FORMAT_MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');

/** A stored time every response can write: an integer of milliseconds within the format's years. */
export function isWritableTime(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= TIME_FORMAT_MIN_MS && ms <= TIME_FORMAT_MAX_MS;
}

/** Imported times start at the Unix epoch: ChatGPT counts seconds from it, and no chat predates it. */
export const IMPORT_TIME_MIN_MS = 0;
/**
 * How far past the server's clock an imported time may be. Clocks disagree a little; much more would
 * stamp every later append of the session after that future time, as messages never go back in time.
 */
export const IMPORT_CLOCK_SKEW_MS = 10 * 60_000;

/** Why an imported time (epoch ms) cannot be stored; `null` when it can. */
export function importedTimeProblem(ms: number, now = Date.now()): string | null {
  if (!Number.isFinite(ms) || ms < IMPORT_TIME_MIN_MS) {
    return 'must not be before 1970-01-01T00:00:00.000Z';
  }
  if (ms > now + IMPORT_CLOCK_SKEW_MS) {
    return `must not be more than ${IMPORT_CLOCK_SKEW_MS / 60_000} minutes after the server's clock (${new Date(now).toISOString()})`;
  }
  return null;
}
