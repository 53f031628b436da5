import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiProperty, ApiResponse, getSchemaPath } from '@nestjs/swagger';
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

  /** Validation errors (400): one per bad field. */
  errors?: FieldErrorDto[];
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

const WHEN: Record<number, string> = {
  400: 'Invalid body field, unknown body field, malformed JSON or bad query parameter; `errors` lists each bad field.',
  401: 'Missing, unknown or revoked API key (AUTH_MODE=api-key); sent with `WWW-Authenticate: Bearer`.',
  404: 'Unknown id, or one that belongs to another owner.',
  409: 'A request with this Idempotency-Key is still being processed.',
  413: 'Body over the size limit.',
  415: 'Body is not JSON (wrong Content-Type).',
  422: 'Idempotency-Key reused with a different request body.',
  429: 'Over the rate limit; `Retry-After` says when to retry.',
  500: 'Unexpected error; details go to the log, never to the body.',
  503: 'A dependency (the database) does not answer, or cannot complete the request; `Retry-After` says when to retry.',
  507: 'The disk is full: nothing was saved.',
};

/** One documented problem response (its example is added with the document, per operation). */
export function problemResponse(status: number) {
  return {
    description: `${STATUS_CODES[status]}: ${WHEN[status] ?? ''}`.trim(),
    content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: getSchemaPath(ProblemDto) } } },
  };
}

/**
 * Documents error responses as RFC 9457 problem documents. 500, which every operation can answer,
 * is added to each operation once, when the document is built (src/common/swagger.ts).
 */
export function ApiProblems(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ApiExtraModels(ProblemDto, FieldErrorDto),
    ...statuses.map((status) => ApiResponse({ status, ...problemResponse(status) })),
  );
}

/** Body routes also answer 400, 413 and 415. */
export const BODY_PROBLEMS = [400, 413, 415];
