import { BadRequestException } from '@nestjs/common';
import { Tokenizer, TokenParser, TokenType } from '@streamparser/json';
import { fieldPath, IMPORT_MAX_DEPTH, tooDeepProblem } from '../common/http/body-parsing';
import { isPlainObject } from '../common/fields/json-bounds';
import { readChatGptConversation } from './chatgpt-conversation';
import { ImportProblems } from './import-problems';
import { type ImportedSession, Location, readExportedSession } from './imported-session';
import { Pacer } from './pacer';

/**
 * An import file as it arrives: its format (the request's media type) and its bytes, any
 * Content-Encoding undone and the size limit enforced (see ImportIntakeInterceptor).
 */
export interface ImportBody {
  format: 'json' | 'ndjson';
  bytes: AsyncIterable<Buffer> | Iterable<Buffer>;
}

/**
 * Reads a whole import file into sessions ready to insert, or throws one 400 listing the problems
 * (each naming its place in the file and the session or conversation it belongs to). Accepts our
 * export (one `{session, messages}` object or an array of them, or NDJSON with one per line) and
 * ChatGPT's `conversations.json` (an array of conversations with a `mapping`); each element is
 * recognised by its shape, so one file may mix them. The file is parsed as its bytes arrive and
 * each top-level value (array element, NDJSON line, or the one object) is checked as soon as it is
 * complete, yielding to the event loop as it goes; a fatal problem (malformed JSON, too deep, over
 * the size limit) stops reading at once. Nothing here touches the database.
 */
export async function readImportFile(
  body: ImportBody,
  defaultModelName: string,
): Promise<ImportedSession[]> {
  const problems = new ImportProblems();
  const pacer = new Pacer();
  const sessions: ImportedSession[] = [];
  const where = new Map<string, string>();
  const messageIds = new Map<number, string>();

  const read = async (value: unknown, at: Location, field: string) => {
    let imported: ImportedSession | undefined;
    if (isPlainObject(value) && 'mapping' in value) {
      imported = await readChatGptConversation(value, at, problems, defaultModelName, pacer);
    } else if (isPlainObject(value) && 'session' in value) {
      imported = await readExportedSession(value, at, problems, pacer);
    } else {
      problems.add(
        field,
        `${field} is neither an export ({"session", "messages"}) nor a ChatGPT conversation (with a "mapping")`,
      );
    }
    if (!imported) return;
    const { id } = imported.session;
    const first = where.get(id);
    if (first !== undefined) {
      problems.add(
        field,
        `${at.subject}: session ${id} is in the file twice (${first} and ${field})`,
      );
      return;
    }
    where.set(id, field);
    for (const message of imported.messages) {
      if (message.id === null) continue;
      const other = messageIds.get(message.id);
      if (other !== undefined) {
        problems.add(
          field,
          `${at.subject}: message id ${message.id} is in the file twice (${other} and ${field})`,
        );
      }
      messageIds.set(message.id, field);
    }
    sessions.push(imported);
  };

  const values =
    body.format === 'ndjson'
      ? ndjsonValues(body.bytes, problems)
      : jsonValues(body.bytes, problems);
  for await (const { value, field, at } of values) {
    await read(value, at, field);
    if (problems.full) break;
    await pacer.pace();
  }
  problems.throwIfAny();
  return sessions;
}

interface TopLevelValue {
  value: unknown;
  field: string;
  at: Location;
}

/**
 * Nesting past the limit; `path` leads to the container that passed it, `completed` holds the values
 * the same bytes completed before it.
 */
class TooDeep extends Error {
  constructor(
    readonly path: (string | number)[],
    readonly completed: unknown[],
  ) {
    super('too deep');
  }
}

/**
 * An incremental JSON parser for one document that refuses nesting deeper than `maxDepth` as soon
 * as it is reached, before the parser builds anything that deep. With `elements`, the values
 * completed are the elements of a top-level array (each dropped once handed out); otherwise the
 * one top-level value.
 */
class StreamedJson {
  private readonly tokenizer = new Tokenizer();
  private readonly parser: TokenParser;
  /** Per open container: the key or index of its current child, so a problem can name the place. */
  private readonly path: (string | number)[] = [];
  private readonly inArray: boolean[] = [];
  private expectKey = false;
  private done: unknown[] = [];

  constructor(elements: boolean, maxDepth: number) {
    this.parser = new TokenParser({ paths: [elements ? '$.*' : '$'], keepStack: false });
    this.parser.onValue = ({ value }) => this.done.push(value);
    this.tokenizer.onToken = (info) => {
      switch (info.token) {
        case TokenType.LEFT_BRACE:
        case TokenType.LEFT_BRACKET: {
          if (this.path.length >= maxDepth) throw new TooDeep(this.path.slice(), this.take());
          const array = info.token === TokenType.LEFT_BRACKET;
          this.inArray.push(array);
          this.path.push(array ? 0 : '');
          this.expectKey = !array;
          break;
        }
        case TokenType.RIGHT_BRACE:
        case TokenType.RIGHT_BRACKET:
          this.inArray.pop();
          this.path.pop();
          break;
        case TokenType.COMMA:
          if (this.inArray[this.inArray.length - 1]) (this.path[this.path.length - 1] as number)++;
          else this.expectKey = true;
          break;
        case TokenType.STRING:
          if (this.expectKey) this.path[this.path.length - 1] = info.value as string;
          this.expectKey = false;
          break;
      }
      this.parser.write(info);
    };
  }

  /** The values these bytes completed. Throws on malformed JSON or too deep a value. */
  write(bytes: Uint8Array): unknown[] {
    this.tokenizer.write(bytes);
    return this.take();
  }

  /** The values completed at the end of the document; throws when it ends early. */
  end(): unknown[] {
    if (!this.tokenizer.isEnded) this.tokenizer.end();
    if (!this.parser.isEnded) this.parser.end();
    return this.take();
  }

  private take(): unknown[] {
    const done = this.done;
    this.done = [];
    return done;
  }
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const isJsonSpace = (byte: number) =>
  byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/** The bytes without a leading UTF-8 byte order mark. */
async function* withoutBom(bytes: ImportBody['bytes']): AsyncGenerator<Buffer> {
  let first = true;
  for await (const chunk of bytes) {
    yield first && chunk.subarray(0, 3).equals(UTF8_BOM) ? chunk.subarray(3) : chunk;
    first = false;
  }
}

/** A JSON file: the elements of a top-level array, or the one top-level value. */
async function* jsonValues(
  bytes: ImportBody['bytes'],
  problems: ImportProblems,
): AsyncGenerator<TopLevelValue> {
  let parser: StreamedJson | undefined;
  let elements = false;
  let index = 0;
  const named = (value: unknown): TopLevelValue => {
    if (!elements) return { value, field: 'body', at: new Location('', 'the export') };
    const field = `[${index++}]`;
    return { value, field, at: new Location(field, field) };
  };
  function* parse(step: () => unknown[]): Generator<TopLevelValue> {
    let values: unknown[];
    try {
      values = step();
    } catch (error) {
      if (!(error instanceof TooDeep)) {
        throw new BadRequestException('Malformed JSON in request body.');
      }
      // The values before it are still read, so the 400 lists their problems too, as it would
      // for any other problem of the file.
      for (const value of error.completed) yield named(value);
      const { field, message } = tooDeepProblem(IMPORT_MAX_DEPTH, fieldPath(error.path));
      problems.add(field, message);
      problems.throwIfAny();
      throw error;
    }
    for (const value of values) yield named(value);
  }
  for await (const chunk of withoutBom(bytes)) {
    if (!parser) {
      const start = chunk.findIndex((byte) => !isJsonSpace(byte));
      if (start === -1) continue;
      elements = chunk[start] === 0x5b; // '['
      parser = new StreamedJson(elements, IMPORT_MAX_DEPTH);
    }
    const open = parser;
    yield* parse(() => open.write(chunk));
  }
  const open = parser;
  if (!open) problems.add('body', 'the request has no body');
  else yield* parse(() => open.end());
}

/**
 * An NDJSON file: one value per line (numbered from 1, blank lines skipped; no line at all imports
 * nothing, no bytes at all is a problem). A line that is not
 * JSON, or too deep, is a problem of its own and the reading goes on with the next line.
 */
async function* ndjsonValues(
  bytes: ImportBody['bytes'],
  problems: ImportProblems,
): AsyncGenerator<TopLevelValue> {
  let number = 1;
  let empty = true;
  let parser: StreamedJson | undefined;
  let failed = false;
  const field = () => `line ${number}`;
  const fail = (error: unknown) => {
    failed = true;
    parser = undefined;
    if (error instanceof TooDeep) {
      const { field: at, message } = tooDeepProblem(IMPORT_MAX_DEPTH, fieldPath(error.path));
      problems.add(`${field()}: ${at}`, `${field()}: ${message}`);
    } else {
      problems.add(field(), `${field()} is not valid JSON: ${describeJsonError(error)}`);
    }
  };
  const feed = (part: Buffer): unknown[] => {
    if (failed) return [];
    if (!parser) {
      if (part.every(isJsonSpace)) return [];
      parser = new StreamedJson(false, IMPORT_MAX_DEPTH);
    }
    try {
      return parser.write(part);
    } catch (error) {
      fail(error);
      return [];
    }
  };
  const endLine = (): unknown[] => {
    const ended = parser;
    parser = undefined;
    failed = false;
    if (!ended) return [];
    try {
      return ended.end();
    } catch (error) {
      fail(error);
      failed = false;
      return [];
    }
  };
  const line = (value: unknown): TopLevelValue => ({
    value,
    field: field(),
    at: new Location(field(), field()),
  });
  for await (const chunk of withoutBom(bytes)) {
    empty &&= chunk.length === 0;
    let start = 0;
    for (let end = chunk.indexOf(0x0a); end !== -1; end = chunk.indexOf(0x0a, start)) {
      for (const value of [...feed(chunk.subarray(start, end)), ...endLine()]) yield line(value);
      number++;
      start = end + 1;
    }
    for (const value of feed(chunk.subarray(start))) yield line(value);
  }
  for (const value of endLine()) yield line(value);
  if (empty) problems.add('body', 'the request has no body');
}

/** The parser's complaint, without its chunk-relative byte positions. */
function describeJsonError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (message.startsWith('Parser ended in mid-parsing')) return 'the line ends inside a value';
  return message.replace(/ at chunk position .*?(?= in state |$)/, '');
}
