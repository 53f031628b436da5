import { Matches, registerDecorator, ValidationOptions } from 'class-validator';

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

/** A free-form JSON object of bounded size (serialized UTF-8 bytes) and nesting depth. */
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
        validate(value: unknown) {
          return (
            isPlainObject(value) &&
            jsonDepth(value, bounds.maxDepth) <= bounds.maxDepth &&
            Buffer.byteLength(JSON.stringify(value)) <= bounds.maxBytes
          );
        },
        defaultMessage: (args) =>
          `${args?.property} must be a JSON object of at most ${bounds.maxBytes} bytes serialized and ${bounds.maxDepth} levels deep`,
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

/**
 * Text columns refuse U+0000: PostgreSQL cannot store it in text, and the two databases must accept
 * the same input. (Inside JSON fields it is escaped, so metadata may carry it.)
 */
export function NoNulCharacters(): PropertyDecorator {
  // eslint-disable-next-line no-control-regex -- matching U+0000 is the point
  return Matches(/^[^\u0000]*$/, {
    message: ({ property }) => `${property} must not contain NUL (U+0000) characters`,
  });
}
