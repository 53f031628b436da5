import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Client } from 'pg';
import type { EntityManager } from 'typeorm';
import type { Env } from '../config/env.validation';
import { DatabaseService } from '../database/database.service';

const CHANNEL = 'chat_replies';
/** Asks the process generating a reply to cancel it (see RepliesService.cancel). */
const CANCELS = 'chat_reply_cancels';
/** NOTIFY payloads must stay under 8,000 bytes: ids of at most 16 digits and a comma each. */
const IDS_PER_NOTIFY = 400;
const RECONNECT_MS = 1000;

/**
 * Word that replies changed (text stored, ended, cancelled), so a stream served by another process
 * of a deployment reads them at once instead of at its next poll.
 *
 * PostgreSQL's LISTEN/NOTIFY, not Redis pub/sub: every multi-process deployment has PostgreSQL
 * (SQLite serves one process, where streams follow the generation in memory), Redis is optional,
 * and a NOTIFY sent in the transaction that stores the text is delivered only once it commits, so a
 * listener that reads on notice always finds the text. Notices carry message ids only; the text is
 * read from the database. Losing the listening connection loses nothing but speed: streams poll the
 * stored progress every second regardless (RepliesService), and the connection is made again.
 */
@Injectable()
export class ReplyEvents implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('ReplyEvents');
  private readonly listeners = new Map<number, Set<() => void>>();
  private onCancel: ((id: number) => void) | undefined;
  private client: Client | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: DatabaseService,
    private readonly config: ConfigService<Env, true>,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.db.isSqlite) void this.listen();
  }

  /** Before the database closes: a shutdown that fails there must not leave this connection open. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  /** Calls `onChange` whenever another process says reply `id` changed; returns the unsubscribe. */
  subscribe(id: number, onChange: () => void): () => void {
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(onChange);
    return () => {
      set.delete(onChange);
      if (set.size === 0) this.listeners.delete(id);
    };
  }

  /** Calls `handler` with each reply another process asks this one to cancel. */
  handleCancels(handler: (id: number) => void): void {
    this.onCancel = handler;
  }

  /** Asks whichever process generates reply `id` to cancel it (PostgreSQL). */
  async requestCancel(id: number): Promise<void> {
    await this.db.dataSource.query('SELECT pg_notify($1, $2)', [CANCELS, String(id)]);
  }

  /** Queues notices for `ids` in the caller's transaction (sent when it commits). PostgreSQL only. */
  async notify(manager: EntityManager, ids: number[]): Promise<void> {
    if (this.db.isSqlite || ids.length === 0) return;
    for (let i = 0; i < ids.length; i += IDS_PER_NOTIFY) {
      await manager.query('SELECT pg_notify($1, $2)', [
        CHANNEL,
        ids.slice(i, i + IDS_PER_NOTIFY).join(','),
      ]);
    }
  }

  private async listen(): Promise<void> {
    const database = this.config.get('DATABASE', { infer: true });
    if (database.type !== 'postgres' || this.stopped) return;
    const client = new Client({ connectionString: database.url });
    client.on('notification', (message) => {
      if (message.channel === CANCELS) {
        this.onCancel?.(Number(message.payload));
        return;
      }
      for (const id of (message.payload ?? '').split(',')) {
        for (const onChange of this.listeners.get(Number(id)) ?? []) onChange();
      }
    });
    client.on('error', (error) => {
      this.logger.warn(`Listening for reply notices failed: ${error.message}; connecting again`);
      void client.end().catch(() => undefined);
      if (this.client === client) this.client = undefined;
      this.again();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      await client.query(`LISTEN ${CANCELS}`);
      if (this.stopped) {
        await client.end();
        return;
      }
      this.client = client;
    } catch (error) {
      this.logger.warn(`Could not listen for reply notices: ${String(error)}; trying again`);
      await client.end().catch(() => undefined);
      this.again();
    }
  }

  private again(): void {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.listen(), RECONNECT_MS);
    this.retry.unref();
  }
}
