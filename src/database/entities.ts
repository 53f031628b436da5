import { ApiKey } from '../auth/api-key.entity';
import { IdempotencyKey } from '../idempotency/idempotency-key.entity';
import { ChatMessage } from '../messages/chat-message.entity';
import { SessionCount } from '../sessions/session-count.entity';
import { Session } from '../sessions/session.entity';
import { Setting } from './setting.entity';

/**
 * Every entity, for the DataSources built outside Nest (the TypeORM CLI's in ormconfig.ts, the API
 * key CLI). The app registers each one with `TypeOrmModule.forFeature` in its own module instead;
 * test/schema.e2e-spec.ts checks that the two agree.
 */
export const entities = [Session, SessionCount, ChatMessage, Setting, ApiKey, IdempotencyKey];
