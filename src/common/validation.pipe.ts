import {
  ArgumentMetadata,
  BadRequestException,
  Injectable,
  PipeTransform,
  Type,
} from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate, ValidationError } from 'class-validator';
import { isPlainObject } from './json-bounds';
import { FieldError } from './problem';

/** A 400 whose problem document lists every bad field. */
export class ValidationProblemException extends BadRequestException {
  constructor(readonly errors: FieldError[]) {
    super(`Request validation failed: ${errors.map((e) => e.message).join('; ')}`);
  }
}

function fieldErrors(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...fieldErrors(error.children ?? [], field)];
  });
}

const RAW_JSON_FIELDS = Symbol('rawJsonFields');

/**
 * Marks a free-form JSON field: the pipe hands it to the DTO untouched (class-transformer neither
 * copies nor walks it), so it reads back exactly as sent, whatever its keys.
 */
export function RawJson(): PropertyDecorator {
  return (target, property) => {
    const fields = (Reflect.getMetadata(RAW_JSON_FIELDS, target.constructor) as string[]) ?? [];
    Reflect.defineMetadata(RAW_JSON_FIELDS, [...fields, String(property)], target.constructor);
  };
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
    const rawFields = (Reflect.getMetadata(RAW_JSON_FIELDS, metatype) as string[]) ?? [];
    const plain: Record<string, unknown> = { ...value };
    const raw: Record<string, unknown> = {};
    for (const field of rawFields.filter((f) => Object.hasOwn(plain, f))) {
      raw[field] = plain[field];
      delete plain[field];
    }
    const dto = Object.assign(plainToInstance(metatype, plain), raw);
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
