import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Setting } from './setting.entity';

/** The `settings` table: the only code that reads or writes it (its rows come from migrations). */
@Injectable()
export class SettingsRepository {
  async get(manager: EntityManager, key: string): Promise<string | null> {
    const setting = await manager.findOneBy(Setting, { key });
    return setting?.value ?? null;
  }
}
