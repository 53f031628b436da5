import {
  ArgumentMetadata,
  BadRequestException,
  Injectable,
  PipeTransform,
  ValidationError,
  ValidationPipe,
} from '@nestjs/common';
import { FieldError } from './problem';
import { isPlainObject } from './json-bounds';

/** A 400 whose problem document lists every bad field. */
export class ValidationProblemException extends BadRequestException {
  constructor(readonly errors: FieldError[]) {
    super(`Request validation failed: ${errors.map((e) => e.message).join('; ')}`);
  }
}

function fieldErrors(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const messages = [...new Set(Object.values(error.constraints ?? {}))];
    const own = messages.map((message) => ({ field, message }));
    return [...own, ...fieldErrors(error.children ?? [], field)];
  });
}

const exceptionFactory = (errors: ValidationError[]) =>
  new ValidationProblemException(fieldErrors(errors));

/**
 * The one validation pipe of the app. Bodies are strict (an unknown field is a 400); query strings
 * ignore parameters they do not know, as clients add cache-busters and tracking parameters freely.
 */
@Injectable()
export class AppValidationPipe implements PipeTransform {
  private readonly body = new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    exceptionFactory,
  });

  private readonly query = new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: false,
    transform: true,
    exceptionFactory,
  });

  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (metadata.type === 'body') {
      if (!isPlainObject(value)) {
        throw new ValidationProblemException([
          { field: 'body', message: 'the request body must be a JSON object' },
        ]);
      }
      // JSON.parse keeps "__proto__" as an own key; class-transformer would assign it as the DTO's
      // prototype, slipping past the unknown-field check. It is never a field of ours.
      if (Object.hasOwn(value, '__proto__')) {
        throw new ValidationProblemException([
          { field: '__proto__', message: 'property __proto__ should not exist' },
        ]);
      }
      return this.body.transform(value, metadata);
    }
    if (metadata.type === 'query') return this.query.transform(value, metadata);
    return value;
  }
}
