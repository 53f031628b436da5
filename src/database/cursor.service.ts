import { Injectable, OnModuleInit } from '@nestjs/common';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ValidationProblemException } from '../common/problems/validation.pipe';
import { DatabaseService } from './database.service';
import { SettingsRepository } from './settings.repository';

/**
 * Opaque list cursors: base64url JSON, then an HMAC-SHA256 signature. The key lives in the database
 * (created by a migration), so every process of a deployment signs and accepts the same cursors,
 * and a cursor forged or edited by a client is refused with a 400, never trusted.
 */
@Injectable()
export class CursorService implements OnModuleInit {
  private key: Buffer;

  constructor(
    private readonly db: DatabaseService,
    private readonly settings: SettingsRepository,
  ) {}

  async onModuleInit(): Promise<void> {
    const key = await this.db.read((m) => this.settings.get(m, 'cursor_signing_key'));
    if (key === null)
      throw new Error('The settings table has no cursor_signing_key: run the migrations.');
    this.key = Buffer.from(key, 'base64url');
  }

  /**
   * A secret of this deployment for another purpose than cursors (the same in every process),
   * derived from the signing key so the two uses never share a key.
   */
  derivedKey(purpose: string): Buffer {
    return createHmac('sha256', this.key).update(`derived:${purpose}`).digest();
  }

  encode(payload: unknown): string {
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${body}.${this.sign(body)}`;
  }

  /** The payload of a cursor this deployment issued; a 400 naming `param` for anything else. */
  decode(token: string, param = 'cursor'): unknown {
    const invalid = new ValidationProblemException([
      { field: param, message: `${param} is malformed or was not issued by this server` },
    ]);
    const [body, signature, extra] = token.split('.');
    if (!body || !signature || extra !== undefined) throw invalid;
    // Compared as text: base64url decoding ignores a last character's spare bits, so comparing
    // decoded bytes would accept more than one spelling of a signature.
    const given = Buffer.from(signature);
    const expected = Buffer.from(this.sign(body));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid;
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString()) as unknown;
    } catch {
      throw invalid;
    }
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}
