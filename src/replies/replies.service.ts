import { ConflictException, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { EntityManager } from 'typeorm';
import type { Env } from '../config/env.validation';
import { ValidationProblemException } from '../common/problems/validation.pipe';
import { DatabaseService } from '../database/database.service';
import { ChatMessage } from '../messages/chat-message.entity';
import { ChatMessagesRepository } from '../messages/chat-messages.repository';
import { MessagesService } from '../messages/messages.service';
import { SessionsRepository } from '../sessions/sessions.repository';
import { sessionNotFound } from '../sessions/sessions.service';
import { CreateReplyDto } from './dto/reply.dto';
import { GenerationManager, type LiveReply } from './generation-manager';
import { type CompletionRequest } from './llm-client';
import { type PromptMessage, selectPrompt, usableInPrompt } from './prompt';
import { ReplyEvents } from './reply-events';

/** Path messages read per statement while looking for the prompt's window, newest first. */
const PROMPT_CHUNK = 200;
/** How long a cancel waits for the process generating the reply to store it (PostgreSQL). */
const CANCEL_WAIT_MS = 2000;
/** A stream not served from this process's memory reads the stored reply at least this often. */
const POLL_MS = 1000;

/** What a stream shows of a reply at one moment. */
export interface ReplyView {
  content: string;
  /** The message as it ended (with its final status), once it has. */
  ended: ChatMessage | null;
}

/**
 * A reply as a stream follows it: from this process's memory while it generates it, else from the
 * database (on notice from the generating process, and every POLL_MS).
 */
export interface ReplySource {
  view(): Promise<ReplyView>;
  /** Calls `onChange` when the reply may have changed; returns the unsubscribe. */
  watch(onChange: () => void): () => void;
}

@Injectable()
export class RepliesService {
  private readonly contextMessages: number;
  private readonly followed = new Map<string, Followed>();

  constructor(
    private readonly db: DatabaseService,
    private readonly sessions: SessionsRepository,
    private readonly messages: ChatMessagesRepository,
    private readonly posting: MessagesService,
    private readonly manager: GenerationManager,
    private readonly events: ReplyEvents,
    config: ConfigService<Env, true>,
  ) {
    this.contextMessages = config.get('LLM_CONTEXT_MESSAGES', { infer: true });
  }

  /**
   * Stores an `in_progress` assistant reply under the parent (as a posted message: 400 for a parent
   * not of this session, 409 for a parent still being generated; it becomes the current message)
   * and starts generating it. The prompt is read in the same transaction, so a reply with nothing
   * to send (an empty path) is refused with nothing written.
   */
  async start(owner: string, sessionId: string, dto: CreateReplyDto): Promise<LiveReply> {
    const slot = this.manager.reserve(owner);
    try {
      return await this.store(owner, sessionId, dto, slot);
    } catch (error) {
      slot.release();
      throw error;
    }
  }

  private async store(
    owner: string,
    sessionId: string,
    dto: CreateReplyDto,
    slot: { release: () => void },
  ): Promise<LiveReply> {
    let prompt: PromptMessage[] = [];
    let model = '';
    const message = await this.posting.store(
      owner,
      {
        session_id: sessionId,
        role: 'assistant',
        content: '',
        metadata: null,
        status: 'in_progress',
        generation: null,
      },
      { given: dto.parent_id !== undefined, id: dto.parent_id ?? null },
      async (manager, stored) => {
        const session = await this.sessions.findOwned(manager, owner, sessionId);
        if (!session) throw sessionNotFound(sessionId);
        prompt =
          stored.parent_id === null
            ? []
            : await this.prompt(manager, owner, sessionId, stored.parent_id, session.message_count);
        if (prompt.length === 0) {
          throw new ValidationProblemException([
            {
              field: 'parent_id',
              message:
                'a reply needs a message to answer: the path up to its parent holds none (a complete or cancelled message with text)',
            },
          ]);
        }
        model = dto.model ?? session.llm_model_name ?? '';
        if (model === '') {
          throw new ValidationProblemException([
            {
              field: 'model',
              message: "no model to ask: give model, or set the session's llm_model_name",
            },
          ]);
        }
        stored.generation = { model, finish_reason: null, usage: null, error: null };
        await this.messages.setGeneration(manager, stored.id, stored.generation);
      },
    );
    const request: CompletionRequest = {
      model,
      messages: prompt,
      ...(dto.temperature === undefined ? {} : { temperature: dto.temperature }),
      ...(dto.max_tokens === undefined ? {} : { max_tokens: dto.max_tokens }),
    };
    return this.manager.start(message, request, slot);
  }

  /**
   * The prompt for a reply under `parentId`: selectPrompt over the path from the root, read from its
   * newest end a chunk at a time until the window is full, plus the path's first system message.
   */
  private async prompt(
    manager: EntityManager,
    owner: string,
    sessionId: string,
    parentId: number,
    messageCount: number,
  ): Promise<PromptMessage[]> {
    const branch = await this.messages.path(manager, sessionId, parentId, messageCount);
    if (!branch) return [];
    const ids = branch.entries.map((entry) => entry.id);
    let tail: ChatMessage[] = [];
    let usable = 0;
    let from = ids.length;
    while (from > 0 && usable < this.contextMessages) {
      const start = Math.max(0, from - PROMPT_CHUNK);
      const chunk = await this.messages.byIds(manager, owner, sessionId, ids.slice(start, from));
      usable += chunk.filter(usableInPrompt).length;
      tail = [...chunk, ...tail];
      from = start;
    }
    // The path's first system message, if the window left it out.
    let head: ChatMessage[] = [];
    for (let at = 0; at < from && head.length === 0; at += PROMPT_CHUNK) {
      const chunk = await this.messages.byIds(
        manager,
        owner,
        sessionId,
        ids.slice(at, Math.min(from, at + PROMPT_CHUNK)),
      );
      head = chunk.filter((m) => m.role === 'system' && usableInPrompt(m)).slice(0, 1);
    }
    return selectPrompt([...head, ...tail], this.contextMessages);
  }

  /**
   * Cancels the owner's reply: the text so far kept, status `cancelled`, whichever process generates
   * it (see cancelElsewhere). 409 if the message is not in progress.
   */
  async cancel(owner: string, sessionId: string, messageId: string): Promise<ChatMessage> {
    const message = await this.owned(owner, sessionId, messageId);
    const ours = await this.manager.cancel(message.id);
    if (ours) return ours;
    if (ours === undefined && message.status === 'in_progress') {
      const ended = await this.cancelElsewhere(owner, message);
      if (ended?.status === 'cancelled') return ended;
    }
    throw new ConflictException(
      `Message ${message.id} is not a reply in progress: there is nothing to cancel.`,
    );
  }

  /**
   * Cancels a reply this process does not generate. On PostgreSQL the process that generates it is
   * asked first (ReplyEvents): it stores the cancel with all the text it has, which its streams may
   * have sent beyond what is stored. Only if the reply is still in progress after CANCEL_WAIT_MS
   * (no process generates it: its owner died) is the cancel stored here, with the stored text. The
   * message as it ended, or null if it is gone.
   */
  private async cancelElsewhere(owner: string, message: ChatMessage): Promise<ChatMessage | null> {
    const read = () =>
      this.db.read((manager) =>
        this.messages.findOwned(manager, owner, message.session_id, message.id),
      );
    if (!this.db.isSqlite) {
      await this.events.requestCancel(message.id);
      const deadline = Date.now() + CANCEL_WAIT_MS;
      while (Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const unsubscribe = this.events.subscribe(message.id, () => {
            clearTimeout(timer);
            unsubscribe();
            resolve();
          });
          const timer = setTimeout(() => {
            unsubscribe();
            resolve();
          }, 100);
        });
        const now = await read();
        if (!now || now.status !== 'in_progress') return now;
      }
    }
    const generation = message.generation ?? {
      model: '',
      finish_reason: null,
      usage: null,
      error: null,
    };
    const cancelled = await this.manager.storeEnd(message.id, {
      content: null,
      status: 'cancelled',
      generation: { ...generation, finish_reason: null, error: null },
    });
    return cancelled ?? (await read());
  }

  /** Aborted when the process shuts down, after its own replies have ended. */
  get shutdown(): AbortSignal {
    return this.manager.shutdown;
  }

  /** The owner's message, or 404 (as `GET …/messages/{message_id}` answers). */
  owned(owner: string, sessionId: string, messageId: string): Promise<ChatMessage> {
    return this.posting.get(owner, sessionId, messageId);
  }

  /** What a stream of the owner's message follows (see ReplySource). */
  source(owner: string, message: ChatMessage): ReplySource {
    const live = this.manager.get(message.id);
    if (live) return liveSource(live);
    return this.follow(owner, message);
  }

  /**
   * A reply another process generates (or one that ended), read from the database. The streams of
   * one reply in this process share one poll timer, one subscription to notices and one read at a
   * time, so N streams on a reply cost what one does; the timer and the subscription exist while a
   * stream watches (a stream that never started watching leaves nothing behind). A reply deleted
   * meanwhile ends as cancelled with the last text the stream read, which it has sent.
   */
  private follow(owner: string, message: ChatMessage): ReplySource {
    const key = `${owner}\n${message.id}`;
    const read = () =>
      this.db.read((manager) =>
        this.messages.findOwned(manager, owner, message.session_id, message.id),
      );
    let last = message;
    return {
      view: async () => {
        const shared = this.followed.get(key);
        const now = await (shared
          ? (shared.reading ??= read().finally(() => (shared.reading = undefined)))
          : read());
        if (!now) return { content: last.content, ended: { ...last, status: 'cancelled' } };
        last = now;
        return { content: now.content, ended: now.status === 'in_progress' ? null : now };
      },
      watch: (onChange) => {
        const shared = this.followed.get(key) ?? this.startFollowing(key, message.id);
        shared.watchers.add(onChange);
        return () => {
          shared.watchers.delete(onChange);
          if (shared.watchers.size === 0) shared.stop();
        };
      },
    };
  }

  /** The timer and the subscription the streams of reply `id` share (see follow). */
  private startFollowing(key: string, id: number): Followed {
    const shared: Followed = { watchers: new Set(), reading: undefined, stop: () => undefined };
    const changed = () => {
      for (const onChange of shared.watchers) onChange();
    };
    const unsubscribe = this.events.subscribe(id, changed);
    const timer = setInterval(changed, POLL_MS);
    shared.stop = () => {
      unsubscribe();
      clearInterval(timer);
      this.followed.delete(key);
    };
    this.followed.set(key, shared);
    return shared;
  }
}

/** The streams of one reply this process follows from the database (see RepliesService.follow). */
interface Followed {
  watchers: Set<() => void>;
  /** The read in flight, which every stream of the reply waits for. */
  reading: Promise<ChatMessage | null> | undefined;
  stop: () => void;
}

/** A reply this process generates, followed in memory. */
export function liveSource(live: LiveReply): ReplySource {
  return {
    view: () => {
      const end = live.end;
      if (!end) return Promise.resolve({ content: live.content, ended: null });
      if (end.message) return Promise.resolve({ content: end.message.content, ended: end.message });
      if ('error' in end) {
        return Promise.reject(
          end.error instanceof Error ? end.error : new Error(String(end.error)),
        );
      }
      // Deleted while it was generated: the stream ends as cancelled, with the text it had.
      return Promise.resolve({
        content: live.content,
        ended: { ...live.message, content: live.content, status: 'cancelled' as const },
      });
    },
    watch: (onChange) => live.watch(onChange),
  };
}
