//! The database connection: SQLite by default, PostgreSQL by URL, migrations applied by
//! the `migration` crate.
use std::time::Duration;

use migration::MigratorTrait;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

use crate::config::Config;
use crate::error::StoreError;

/// Opens the database named by the configuration.
///
/// SQLite gets WAL mode and a busy timeout, so that readers never block the writer and a
/// writer waits for another instead of failing with `database is locked`.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, StoreError> {
    let mut options = ConnectOptions::new(config.database_url.clone());
    let sqlite = config.database_url.starts_with("sqlite:");
    options
        // SQLite: one connection, so writers queue instead of failing with `database is
        // locked` (a deferred transaction that reads and then writes cannot wait for the
        // lock). The embedded default is one process; PostgreSQL is for concurrency.
        .max_connections(if sqlite {
            1
        } else {
            config.database_max_connections
        })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if sqlite {
        options.map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    }
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        // Belt and braces for connections opened before the options applied.
        db.execute_unprepared("PRAGMA foreign_keys = ON").await?;
    }
    Ok(db)
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    migration::Migrator::up(db, None).await?;
    Ok(())
}
