import { Injectable, Logger } from '@nestjs/common';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { DatabaseService } from '../database/database.service';
import { ApiKeysRepository, type ApiKeyInfo } from './api-keys.repository';

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

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * API keys: high-entropy random secrets, shown once and stored only as SHA-256 hashes (a slow
 * password hash buys nothing for 256 random bits). Every request looks its key up in the database,
 * so a revocation takes effect at once in every process.
 */
@Injectable()
export class ApiKeysService {
  private readonly logger = new Logger('ApiKeys');
  private readonly lastUsedWrites = new Map<string, number>();

  constructor(
    private readonly db: DatabaseService,
    private readonly keys: ApiKeysRepository,
  ) {}

  /** A new key for `owner`; the returned `key` is the only time the secret exists in clear. */
  async create(owner: string): Promise<{ id: string; key: string }> {
    if (!OWNER_PATTERN.test(owner)) {
      throw new Error(
        'owner must be 1–200 characters: letters, digits, ".", "_", "@" or "-", starting with a letter or digit',
      );
    }
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const key = {
      id,
      owner_id: owner,
      secret_hash: sha256(secret),
      created_at: Date.now(),
      last_used_at: null,
      revoked_at: null,
    };
    await this.db.write((m) => this.keys.insert(m, key));
    return { id, key: `csk_${id}_${secret}` };
  }

  list(): Promise<ApiKeyInfo[]> {
    return this.db.read((m) => this.keys.list(m));
  }

  /** False when no such key exists or it was already revoked. */
  revoke(id: string): Promise<boolean> {
    return this.db.write((m) => this.keys.revoke(m, id, Date.now()));
  }

  /** The owner of a valid, unrevoked key; null for anything else. */
  async authenticate(key: string): Promise<string | null> {
    const match = KEY_PATTERN.exec(key);
    if (!match) return null;
    const [, id, secret] = match;
    const row = await this.db.peek((m) => this.keys.find(m, id));
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
      .write((m) => this.keys.touch(m, id, now))
      .catch((error: unknown) =>
        this.logger.warn(`Could not record the use of key ${id}: ${String(error)}`),
      );
  }
}
