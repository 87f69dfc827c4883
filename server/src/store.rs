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

/// The placeholders and values of a statement written by hand for PostgreSQL: for the few
/// hot paths that put what would be several statements of a transaction into one statement
/// of common table expressions (one round trip, one commit).
#[derive(Debug, Default)]
pub struct Params(Vec<sea_orm::Value>);

impl Params {
    /// Adds a value; returns its placeholder (`$n`).
    pub fn bind(&mut self, value: impl Into<sea_orm::Value>) -> String {
        self.0.push(value.into());
        format!("${}", self.0.len())
    }

    pub fn statement(self, sql: String) -> sea_orm::Statement {
        sea_orm::Statement::from_sql_and_values(DbBackend::Postgres, sql, self.0)
    }
}

/// `INSERT INTO {table} ({every column}) {SELECT values FROM from}` for each of `models`
/// (joined by `UNION ALL`): the rows are written once per row of `from`, so with a `from`
/// that is empty when an earlier part of the statement did nothing, nothing is written.
/// `models` must not be empty (there would be no statement to write).
pub fn insert_select<A>(params: &mut Params, models: Vec<A>, from: &str) -> String
where
    A: sea_orm::ActiveModelTrait,
{
    debug_assert!(!models.is_empty(), "an INSERT of no rows");
    use sea_orm::{ActiveValue, EntityName, IdenStatic, Iterable};
    let table = <A::Entity as Default>::default().table_name().to_owned();
    let mut columns = Vec::new();
    let mut selects = Vec::new();
    for (i, model) in models.into_iter().enumerate() {
        let mut values = Vec::new();
        for column in <A::Entity as sea_orm::EntityTrait>::Column::iter() {
            if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = model.get(column) {
                if i == 0 {
                    columns.push(format!("\"{}\"", column.as_str()));
                }
                values.push(params.bind(value));
            }
        }
        selects.push(format!("SELECT {} FROM {from}", values.join(", ")));
    }
    format!(
        "INSERT INTO \"{table}\" ({}) {}",
        columns.join(", "),
        selects.join(" UNION ALL ")
    )
}
