//! The database connection: SQLite by default, PostgreSQL by URL, migrations applied by
//! the `migration` crate.
use std::time::Duration;

use migration::MigratorTrait;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

use crate::config::Config;
use crate::error::StoreError;
use crate::telemetry::metrics;

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
    let mut db = Database::connect(options).await?;
    // Every statement (in transactions too) is timed into `db_query_duration_seconds` and,
    // inside a sampled call, becomes a Sentry span (the SQL has placeholders, never values).
    db.set_metric_callback(|info| {
        let operation = metrics::sql_operation(&info.statement.sql);
        metrics::db_query(operation, info.elapsed, info.failed);
        crate::telemetry::span_finished(
            "db.sql.query",
            &info.statement.sql,
            info.elapsed,
            info.failed,
        );
    });
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

/// Exports the pool's use now (`db_pool_connections`, `db_pool_max_connections`); called
/// at each scrape of `/metrics`.
pub fn record_pool(db: &DatabaseConnection) {
    let (size, idle, max) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        _ => return,
    };
    let idle = idle as u64;
    metrics::db_pool(u64::from(size).saturating_sub(idle), idle, u64::from(max));
}
