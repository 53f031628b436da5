import { DataSource, type ColumnOptions } from 'typeorm';

/** What a column is on PostgreSQL where that differs from its portable decorator. */
export type PostgresColumnOptions = Pick<ColumnOptions, 'type' | 'collation'>;

const optionsByEntity = new Map<object, Map<string, PostgresColumnOptions>>();

/**
 * Column options that hold on PostgreSQL only, over the portable ones of the column's decorator:
 * TypeORM has one set of options per column for every database (typeorm/typeorm#2590), while the
 * migrations give PostgreSQL a few things SQLite has no use for or cannot have (a BIGINT message id
 * where SQLite's INTEGER PRIMARY KEY is already 64-bit, the byte-order collation "C" that is
 * SQLite's default). `PostgresAwareDataSource` applies them, so the entities describe both schemas.
 */
export function OnPostgres(options: PostgresColumnOptions): PropertyDecorator {
  return (target, property) => {
    const entity = target.constructor;
    const columns = optionsByEntity.get(entity) ?? new Map<string, PostgresColumnOptions>();
    columns.set(String(property), options);
    optionsByEntity.set(entity, columns);
  };
}

/**
 * The DataSource of the app, the CLI and the tests: TypeORM's, with the entities' `@OnPostgres`
 * options applied to the metadata it builds when it runs on PostgreSQL.
 */
export class PostgresAwareDataSource extends DataSource {
  protected override async buildMetadatas(): Promise<void> {
    await super.buildMetadatas();
    if (this.options.type !== 'postgres') return;
    for (const entity of this.entityMetadatas) {
      const columns = optionsByEntity.get(entity.target as object);
      for (const column of entity.columns) {
        Object.assign(column, columns?.get(column.propertyName));
      }
    }
  }
}
