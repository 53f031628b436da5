import { IMPORT_MAX_DEPTH } from '../common/body-parsing';
import { isPlainObject, jsonDepth } from '../common/json-bounds';
import { readChatGptConversation } from './chatgpt-conversation';
import { ImportProblems } from './import-problems';
import { type ImportedSession, Location, readExportedSession } from './imported-session';
import { Pacer } from './pacer';

/** A request body as the import's body pipeline left it. */
export type ImportBody = { json: unknown } | { ndjson: unknown };

/**
 * Reads a whole import file into sessions ready to insert, or throws one 400 listing the problems
 * (each naming its place in the file and the session or conversation it belongs to). Accepts our
 * export (one `{session, messages}` object or an array of them, or NDJSON with one per line) and
 * ChatGPT's `conversations.json` (an array of conversations with a `mapping`); each element is
 * recognised by its shape, so one file may mix them. All the checking happens here, before the
 * database is touched, yielding to the event loop as it goes.
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

  const read = (value: unknown, at: Location, field: string) => {
    let imported: ImportedSession | undefined;
    if (isPlainObject(value) && 'mapping' in value) {
      imported = readChatGptConversation(value, at, problems, defaultModelName);
    } else if (isPlainObject(value) && 'session' in value) {
      imported = readExportedSession(value, at, problems);
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

  if ('ndjson' in body) {
    if (typeof body.ndjson !== 'string') problems.add('body', 'the request has no body');
    else {
      for (const [number, line] of lines(body.ndjson)) {
        const field = `line ${number}`;
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch (error) {
          problems.add(field, `${field} is not valid JSON: ${(error as Error).message}`);
          continue;
        }
        if (jsonDepth(value, IMPORT_MAX_DEPTH) > IMPORT_MAX_DEPTH) {
          problems.add(field, `${field} is nested more than ${IMPORT_MAX_DEPTH} levels deep`);
          continue;
        }
        read(value, new Location(field, field), field);
        await pacer.pace();
      }
    }
  } else if (Array.isArray(body.json)) {
    for (const [i, value] of body.json.entries()) {
      read(value, new Location(`[${i}]`, `[${i}]`), `[${i}]`);
      await pacer.pace();
    }
  } else if (isPlainObject(body.json)) {
    read(body.json, new Location('', 'the export'), 'body');
  } else {
    problems.add('body', 'the request has no body');
  }
  problems.throwIfAny();
  return sessions;
}

/** The non-blank lines of an NDJSON text, numbered from 1 (a `\r` before `\n` and a BOM are ignored). */
function* lines(text: string): Generator<[number, string]> {
  let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let number = 1; start < text.length; number++) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, text.charCodeAt(end - 1) === 13 ? end - 1 : end);
    if (line.trim() !== '') yield [number, line];
    start = end + 1;
  }
}
