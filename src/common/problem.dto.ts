import { applyDecorators } from '@nestjs/common';
import {
  ApiExtraModels,
  ApiProperty,
  ApiPropertyOptional,
  ApiResponse,
  getSchemaPath,
} from '@nestjs/swagger';
import { STATUS_CODES } from 'node:http';

export class FieldErrorDto {
  @ApiProperty({ example: 'role' })
  field: string;

  @ApiProperty({ example: 'role must be one of the following values: user, assistant, system' })
  message: string;
}

export class ProblemDto {
  @ApiProperty({ example: 'about:blank' })
  type: string;

  @ApiProperty({ example: 'Not Found' })
  title: string;

  @ApiProperty({ type: 'integer', example: 404 })
  status: number;

  @ApiProperty({ example: "Session with ID '6f1c…' not found." })
  detail: string;

  @ApiProperty({ example: '/api/v1/sessions/6f1c…' })
  instance: string;

  @ApiPropertyOptional({
    type: [FieldErrorDto],
    description: 'Validation errors (400): one per bad field.',
  })
  errors?: FieldErrorDto[];
}

const WHEN: Record<number, string> = {
  400: 'Invalid body field, unknown body field, malformed JSON or bad query parameter.',
  401: 'Missing, unknown or revoked API key (AUTH_MODE=api-key); sent with WWW-Authenticate: Bearer.',
  404: 'Unknown id.',
  413: 'Body over the size limit.',
  409: 'A request with this Idempotency-Key is still being processed.',
  415: 'Body is not JSON.',
  422: 'Idempotency-Key reused with a different request body.',
  429: 'Over the rate limit; Retry-After says when to retry.',
  503: 'Not ready: a dependency (the database) does not answer.',
  500: 'Unexpected error; details go to the log, never to the body.',
};

/** Documents error responses as RFC 9457 problem documents. 500 is documented on every route. */
export function ApiProblems(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ApiExtraModels(ProblemDto, FieldErrorDto),
    ...[...new Set([...statuses, 500])].map((status) =>
      ApiResponse({
        status,
        description: `${STATUS_CODES[status]}: ${WHEN[status] ?? ''}`.trim(),
        content: { 'application/problem+json': { schema: { $ref: getSchemaPath(ProblemDto) } } },
      }),
    ),
  );
}

/** Body routes also answer 400, 413 and 415. */
export const BODY_PROBLEMS = [400, 413, 415];
