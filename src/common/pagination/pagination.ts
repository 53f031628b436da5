import { applyDecorators } from '@nestjs/common';
import type { Response } from 'express';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';

export const MAX_PAGE_SIZE = 1000;

/** Query strings arrive as text: only a plain run of digits (with an optional minus) becomes a number. */
export const toInteger = Transform(({ value }: { value: unknown }) =>
  typeof value === 'string' && /^-?\d{1,16}$/.test(value) ? Number(value) : value,
);

/** `skip`: how many items of the list to pass over (offset paging). */
export function SkipQuery(): PropertyDecorator {
  return applyDecorators(
    ApiPropertyOptional({
      type: 'integer',
      minimum: 0,
      default: 0,
      description: 'Number of items to skip (offset paging).',
    }),
    toInteger,
    IsOptional(),
    IsInt({ message: 'skip must be a non-negative integer' }),
    Min(0, { message: 'skip must be a non-negative integer' }),
    Max(Number.MAX_SAFE_INTEGER, { message: 'skip is too large' }),
  );
}

/** `limit`: the page size, 1 to 1000. */
export function LimitQuery(fallback: number): PropertyDecorator {
  const message = `limit must be an integer from 1 to ${MAX_PAGE_SIZE}`;
  return applyDecorators(
    ApiPropertyOptional({
      type: 'integer',
      minimum: 1,
      maximum: MAX_PAGE_SIZE,
      default: fallback,
      description: 'Maximum number of items to return.',
    }),
    toInteger,
    IsInt({ message }),
    Min(1, { message }),
    Max(MAX_PAGE_SIZE, { message }),
  );
}

/** The response header that carries the size of the whole list a query selects. */
export const TOTAL_COUNT_HEADER = 'X-Total-Count';

/** The OpenAPI description of a list response's headers. */
export function listHeaders(totalDescription: string) {
  return {
    [TOTAL_COUNT_HEADER]: {
      description: totalDescription,
      required: true,
      schema: { type: 'integer' },
    },
    Link: {
      description:
        'RFC 8288 `<…>; rel="next"` when the page is full: the next page by cursor, as a path and query relative to the server root. Absent on the last page.',
      required: false,
      schema: { type: 'string' },
    },
  };
}

export interface Page<T> {
  items: T[];
  /** The size of the whole list the filters select, ignoring paging. */
  total: number;
  /** Query parameters of the next page, when this page is full. */
  next?: Record<string, string | number>;
}

/**
 * A page too large to hold at once: the headers are known up front, the items come a chunk at a
 * time, each read only when the client has taken the previous one.
 */
export interface StreamedPage<T> extends Omit<Page<T>, 'items'> {
  chunks: AsyncIterable<T[]>;
}

/** `X-Total-Count`, and `Link: <path?query>; rel="next"` when there is a next page. */
export function pageHeaders(
  path: string,
  page: Pick<Page<unknown>, 'total' | 'next'>,
): Record<string, string> {
  const headers: Record<string, string> = { [TOTAL_COUNT_HEADER]: String(page.total) };
  if (page.next) {
    const query = new URLSearchParams(
      Object.entries(page.next).map(([key, value]): [string, string] => [key, String(value)]),
    );
    headers.Link = `<${path}?${query.toString()}>; rel="next"`;
  }
  return headers;
}

export function setPageHeaders(
  res: Response,
  path: string,
  page: Pick<Page<unknown>, 'total' | 'next'>,
): void {
  for (const [name, value] of Object.entries(pageHeaders(path, page))) res.setHeader(name, value);
}
