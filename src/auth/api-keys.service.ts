import { Injectable, Logger } from '@nestjs/common';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { DatabaseService, queryRows } from '../database/database.service';

/** An owner name: what `apikey create --owner` accepts. */
export const OWNER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/;

/** `csk_<key id>_<secret>`: the id finds the row, the secret is checked against its hash. */
const KEY_PATTERN = /^csk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** Whether `token` has the shape of an API key (it may still be unknown or revoked). */
export function looksLikeKey(token: string | undefined): boolean {
  return token !== undefined && KEY_PATTERN.test(token);
}

/** last_used_at is informational; writing it on every request would make every read a write. */
const LAST_USED_RESOLUTION_MS = 60_000;

export interface ApiKeyInfo {
  id: string;
  owner_id: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

interface ApiKeyRow {
  id: string;
  owner_id: string;
  secret_hash: string;
  created_at: number | string;
  last_used_at: number | string | null;
  revoked_at: number | string | null;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const optionalNumber = (value: number | string | null) => (value === null ? null : Number(value));

/**
 * API keys: high-entropy random secrets, shown once and stored only as SHA-256 hashes (a slow
 * password hash buys nothing for 256 random bits). Every request looks its key up in the database,
 * so a revocation takes effect at once in every process.
 */
@Injectable()
export class ApiKeysService {
  private readonly logger = new Logger('ApiKeys');
  private readonly lastUsedWrites = new Map<string, number>();
  private readonly sql: Record<'insert' | 'list' | 'find' | 'revoke' | 'touch', string>;

  constructor(private readonly db: DatabaseService) {
    this.sql = {
      insert: db.sql(
        `INSERT INTO "api_keys" ("id", "owner_id", "secret_hash", "created_at") VALUES (?, ?, ?, ?)`,
      ),
      list: db.sql(
        `SELECT "id", "owner_id", "created_at", "last_used_at", "revoked_at" FROM "api_keys"
         ORDER BY "owner_id", "created_at", "id"`,
      ),
      find: db.sql(
        `SELECT "id", "owner_id", "secret_hash", "created_at", "last_used_at", "revoked_at"
         FROM "api_keys" WHERE "id" = ?`,
      ),
      revoke: db.sql(
        `UPDATE "api_keys" SET "revoked_at" = ? WHERE "id" = ? AND "revoked_at" IS NULL RETURNING "id"`,
      ),
      touch: db.sql(`UPDATE "api_keys" SET "last_used_at" = ? WHERE "id" = ?`),
    };
  }

  /** A new key for `owner`; the returned `key` is the only time the secret exists in clear. */
  async create(owner: string): Promise<{ id: string; key: string }> {
    if (!OWNER_PATTERN.test(owner)) {
      throw new Error(
        'owner must be 1–200 characters: letters, digits, ".", "_", "@" or "-", starting with a letter or digit',
      );
    }
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    await this.db.write((m) =>
      queryRows(m, this.sql.insert, [id, owner, sha256(secret), Date.now()]),
    );
    return { id, key: `csk_${id}_${secret}` };
  }

  async list(): Promise<ApiKeyInfo[]> {
    const rows: Omit<ApiKeyRow, 'secret_hash'>[] = await this.db.read((m) =>
      queryRows(m, this.sql.list),
    );
    return rows.map((row) => ({
      id: row.id,
      owner_id: row.owner_id,
      created_at: Number(row.created_at),
      last_used_at: optionalNumber(row.last_used_at),
      revoked_at: optionalNumber(row.revoked_at),
    }));
  }

  /** False when no such key exists or it was already revoked. */
  async revoke(id: string): Promise<boolean> {
    const revoked = await this.db.write((m) => queryRows(m, this.sql.revoke, [Date.now(), id]));
    return revoked.length > 0;
  }

  /** The owner of a valid, unrevoked key; null for anything else. */
  async authenticate(key: string): Promise<string | null> {
    const match = KEY_PATTERN.exec(key);
    if (!match) return null;
    const [, id, secret] = match;
    const [row]: ApiKeyRow[] = await this.db.peek((m) => queryRows(m, this.sql.find, [id]));
    if (!row || row.revoked_at !== null) return null;
    const given = Buffer.from(sha256(secret), 'hex');
    const stored = Buffer.from(row.secret_hash, 'hex');
    if (given.length !== stored.length || !timingSafeEqual(given, stored)) return null;
    this.noteUse(id);
    return row.owner_id;
  }

  private noteUse(id: string): void {
    const now = Date.now();
    if (now - (this.lastUsedWrites.get(id) ?? 0) < LAST_USED_RESOLUTION_MS) return;
    this.lastUsedWrites.set(id, now);
    this.db
      .write((m) => queryRows(m, this.sql.touch, [now, id]))
      .catch((error: unknown) =>
        this.logger.warn(`Could not record the use of key ${id}: ${String(error)}`),
      );
  }
}
