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
function jsonObjectProblem(
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

/**
 * Text columns refuse U+0000 (PostgreSQL cannot store it in text, and both databases must accept the
 * same input) and unpaired UTF-16 surrogates (not Unicode: UTF-8 storage would turn them into
 * U+FFFD, so the text would not read back as sent). JSON fields escape both, so metadata may hold them.
 */
export function StorableText(): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    registerDecorator({
      name: 'storableText',
      target: target.constructor,
      propertyName: String(propertyName),
      validator: {
        validate: (value: unknown) => typeof value !== 'string' || isStorableText(value),
        defaultMessage: (args) =>
          `${args?.property} must be valid Unicode text without NUL (U+0000) characters`,
      },
    });
  };
}
