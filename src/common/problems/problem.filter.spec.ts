import type { ArgumentsHost } from '@nestjs/common';
import { Logger, NotFoundException } from '@nestjs/common';
import { SqliteError } from 'better-sqlite3';
import { QueryFailedError } from 'typeorm';
import { TransactionLostError } from '../../database/database.service';
import { DATABASE_RETRY_AFTER_S, ProblemFilter } from './problem.filter';

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: { status: number; detail: string };
}

function answerTo(exception: unknown): Answer {
  const answer: Answer = { status: 0, headers: {}, body: { status: 0, detail: '' } };
  const res = {
    headersSent: false,
    setHeader: (name: string, value: unknown) => (answer.headers[name] = value),
    status(status: number) {
      answer.status = status;
      return this;
    },
    type() {
      return this;
    },
    send(text: string) {
      answer.body = JSON.parse(text) as Answer['body'];
      return this;
    },
  };
  const host = {
    switchToHttp: () => ({
      getRequest: () => ({ method: 'POST', originalUrl: '/api/v1/sessions' }),
      getResponse: () => res,
    }),
  } as unknown as ArgumentsHost;
  new ProblemFilter().catch(exception, host);
  return answer;
}

function queryFailed(driverError: Error): QueryFailedError {
  return new QueryFailedError('INSERT INTO "sessions" …', [], driverError);
}

function postgresError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('ProblemFilter', () => {
  beforeEach(() => jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  it.each([
    ['SQLite: disk full', queryFailed(new SqliteError('database or disk is full', 'SQLITE_FULL'))],
    ['PostgreSQL: disk_full', queryFailed(postgresError('53100', 'could not extend file'))],
  ])('answers 507 when the server is out of space (%s)', (_, error) => {
    const answer = answerTo(error);
    expect(answer.status).toBe(507);
    expect(answer.body.detail).toBe(
      'The server has run out of storage space; nothing was saved. Try again later.',
    );
    expect(answer.headers['Retry-After']).toBeUndefined();
  });

  it.each([
    ['SQLite: I/O error', queryFailed(new SqliteError('disk I/O error', 'SQLITE_IOERR_WRITE'))],
    ['SQLite: busy', queryFailed(new SqliteError('database is locked', 'SQLITE_BUSY'))],
    ['SQLite: out of memory', queryFailed(new SqliteError('out of memory', 'SQLITE_NOMEM'))],
    ['PostgreSQL: too many connections', queryFailed(postgresError('53300', 'too many clients'))],
    ['PostgreSQL: statement timeout', queryFailed(postgresError('57014', 'canceling statement'))],
    ['PostgreSQL: shut down', queryFailed(postgresError('57P01', 'terminating connection'))],
    ['a refused connection', postgresError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.5:5432')],
    [
      'PostgreSQL: every pooled connection busy',
      new Error('timeout exceeded when trying to connect'),
    ],
    ['PostgreSQL: a connection lost', new Error('Connection terminated unexpectedly')],
    ['a transaction SQLite rolled back', new TransactionLostError()],
  ])('answers 503 with Retry-After when the database fails (%s)', (_, error) => {
    const answer = answerTo(error);
    expect(answer.status).toBe(503);
    expect(answer.headers['Retry-After']).toBe(DATABASE_RETRY_AFTER_S);
    expect(answer.body.detail).toBe(
      'The database could not complete the request; try again later.',
    );
  });

  it.each([
    [
      'a constraint SQLite reports',
      queryFailed(new SqliteError('FOREIGN KEY', 'SQLITE_CONSTRAINT')),
    ],
    ['a syntax error on PostgreSQL', queryFailed(postgresError('42601', 'syntax error'))],
    ['a bug', new TypeError('x is undefined')],
  ])('keeps 500 for what is a bug, not an unavailable database (%s)', (_, error) => {
    const answer = answerTo(error);
    expect(answer.status).toBe(500);
    expect(answer.body.detail).toBe('An unexpected error occurred.');
  });

  it('still answers HTTP exceptions as they say', () => {
    expect(answerTo(new NotFoundException('Session not found.')).status).toBe(404);
  });
});
