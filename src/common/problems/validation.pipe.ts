import {
  ArgumentMetadata,
  BadRequestException,
  Injectable,
  NotFoundException,
  PipeTransform,
  Type,
} from '@nestjs/common';
import { Exclude, plainToInstance } from 'class-transformer';
import { validate, ValidationError } from 'class-validator';
import { isPlainObject, isStorableText } from '../fields/json-bounds';
import { FieldError } from './problem';

/** A 400 whose problem document lists every bad field. */
export class ValidationProblemException extends BadRequestException {
  constructor(
    readonly errors: FieldError[],
    summary = 'Request validation failed',
  ) {
    super(`${summary}: ${errors.map((e) => e.message).join('; ')}`);
  }
}

function fieldErrors(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...fieldErrors(error.children ?? [], field)];
  });
}

/**
 * Marks a free-form JSON field: class-transformer leaves it out (so it neither copies nor walks
 * it) and the pipe hands the DTO the raw value, which reads back exactly as sent, whatever its keys.
 * Being class-transformer metadata, the mark survives PartialType and friends.
 */
export function RawJson(): PropertyDecorator {
  return Exclude({ toClassOnly: true });
}

/** Keys that would reach into an object's prototype machinery; never fields of a DTO. */
const RESERVED_KEYS = ['__proto__', 'constructor', 'prototype'];

/**
 * The one validation pipe of the app: class-transformer builds the DTO, class-validator checks it.
 * Bodies are strict (an unknown field is a 400); query strings ignore parameters they do not know,
 * as clients add cache-busters and tracking parameters freely.
 *
 * Written out instead of Nest's `ValidationPipe` because that one silently deletes `__proto__`,
 * `constructor` and `prototype` keys at every depth, and message metadata is free-form JSON that
 * must read back exactly as sent. Here such keys are refused at the top level only, and free-form
 * fields (`@RawJson()`) keep their raw value.
 */
@Injectable()
export class AppValidationPipe implements PipeTransform {
  async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    // No id holds such characters, and PostgreSQL cannot even compare with them: a plain 404.
    if (metadata.type === 'param' && typeof value === 'string' && !isStorableText(value)) {
      throw new NotFoundException(
        `Not found: the ${metadata.data ?? 'id'} holds characters no id contains.`,
      );
    }
    const metatype = metadata.metatype as Type<object> | undefined;
    if (!metatype || (metadata.type !== 'body' && metadata.type !== 'query')) return value;
    if (!isPlainObject(value)) {
      throw new ValidationProblemException([
        { field: metadata.type, message: `the request ${metadata.type} must be a JSON object` },
      ]);
    }
    const isBody = metadata.type === 'body';
    if (isBody) {
      const reserved = RESERVED_KEYS.filter((key) => Object.hasOwn(value, key));
      if (reserved.length > 0) {
        throw new ValidationProblemException(
          reserved.map((field) => ({ field, message: `property ${field} should not exist` })),
        );
      }
    }
    const dto = plainToInstance(metatype, value) as Record<string, unknown>;
    // Fields class-transformer left out (@RawJson) take their raw value.
    for (const key of Object.keys(value)) {
      if (dto[key] === undefined) dto[key] = value[key];
    }
    const errors = await validate(dto, {
      whitelist: true,
      forbidNonWhitelisted: isBody,
      forbidUnknownValues: true,
      stopAtFirstError: true,
    });
    if (errors.length > 0) throw new ValidationProblemException(fieldErrors(errors));
    return dto;
  }
}
