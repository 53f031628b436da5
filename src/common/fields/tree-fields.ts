import { registerDecorator, ValidationOptions } from 'class-validator';
import {
  isPlainObject,
  jsonObjectProblem,
  MESSAGE_ID_MAX,
  METADATA_MAX_DEPTH,
} from './json-bounds';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A message id as the API writes it: an integer from 1 to MESSAGE_ID_MAX. */
export function isMessageId(value: unknown): value is number {
  return (
    Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= MESSAGE_ID_MAX
  );
}

/** Only a client of the service writes these: an export of it carries exactly what it stored. */
const GENERATION_MAX_BYTES = 16 * 1024;
const GENERATION_KEYS = ['model', 'finish_reason', 'usage', 'error'];
const USAGE_KEYS = ['prompt_tokens', 'completion_tokens'];

function exactKeys(value: Record<string, unknown>, keys: string[]): boolean {
  const given = Object.keys(value);
  return given.length === keys.length && keys.every((key) => Object.hasOwn(value, key));
}

const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;

/**
 * Why `value` is not a generated reply's `generation` as the service writes it; `null` when it is:
 * `{model: string, finish_reason: string | null, usage: {prompt_tokens, completion_tokens} | null,
 * error: string | null}`, the counts non-negative integers, at most 16 KiB serialized.
 */
export function generationProblem(property: string, value: unknown): string | null {
  const bounded = jsonObjectProblem(property, value, {
    maxBytes: GENERATION_MAX_BYTES,
    maxDepth: METADATA_MAX_DEPTH,
  });
  if (bounded) return bounded;
  const generation = value as Record<string, unknown>;
  const shape = `${property} must be {"model": string, "finish_reason": string or null, "usage": {"prompt_tokens", "completion_tokens"} or null, "error": string or null}`;
  if (!exactKeys(generation, GENERATION_KEYS)) return shape;
  const { model, finish_reason, usage, error } = generation;
  const nullableString = (v: unknown) => v === null || typeof v === 'string';
  if (typeof model !== 'string' || !nullableString(finish_reason) || !nullableString(error)) {
    return shape;
  }
  if (usage !== null) {
    if (!isPlainObject(usage) || !exactKeys(usage, USAGE_KEYS)) return shape;
    if (!isCount(usage.prompt_tokens) || !isCount(usage.completion_tokens)) {
      return `${property}.usage counts must be non-negative integers`;
    }
  }
  return null;
}

/** Why `value` is not a session's `forked_from`; `null` when it is. */
export function forkedFromProblem(property: string, value: unknown): string | null {
  const shape = `${property} must be {"session_id": a UUID, "message_id": a message id or null}`;
  if (!isPlainObject(value) || !exactKeys(value, ['session_id', 'message_id'])) return shape;
  if (typeof value.session_id !== 'string' || !UUID.test(value.session_id)) return shape;
  if (value.message_id !== null && !isMessageId(value.message_id)) return shape;
  return null;
}

function ruleDecorator(
  name: string,
  problem: (property: string, value: unknown) => string | null,
  options?: ValidationOptions,
): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    registerDecorator({
      name,
      target: target.constructor,
      propertyName: String(propertyName),
      options,
      validator: {
        validate: (value: unknown) => problem('', value) === null,
        defaultMessage: (args) =>
          problem(args?.property ?? 'value', args?.value) ?? `invalid ${name}`,
      },
    });
  };
}

/** A generated reply's `generation` (see generationProblem). */
export function IsGeneration(options?: ValidationOptions): PropertyDecorator {
  return ruleDecorator('isGeneration', generationProblem, options);
}

/** A session's `forked_from` (see forkedFromProblem). */
export function IsForkedFrom(options?: ValidationOptions): PropertyDecorator {
  return ruleDecorator('isForkedFrom', forkedFromProblem, options);
}
