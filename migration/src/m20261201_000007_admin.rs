//! Administration: the append-only audit log, suspensions (why and by whom an account's
//! `status` is `suspended`), the remembered answers of administrators' money-moving calls
//! (replayed for a repeated `request_id`), and the note of a manual refund.
//!
//! The audit log refuses updates and deletes at the database itself (a trigger on both
//! PostgreSQL and SQLite), so no code path, however wrong, can rewrite history.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000007_admin"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Verifications {
    Table,
    RefundNote,
}

#[derive(DeriveIden)]
enum AuditLogEntries {
    Table,
    Id,
    ActorId,
    ActorEmail,
    Method,
    Target,
    Outcome,
    Reason,
    Before,
    After,
    RequestId,
    ClientAddress,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserSuspensions {
    Table,
    UserId,
    SuspendedBy,
    Reason,
    SuspendedAt,
}

#[derive(DeriveIden)]
enum AdminRequests {
    Table,
    ActorId,
    RequestId,
    Method,
    Fingerprint,
    Response,
    CreatedAt,
}

fn timestamp<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn text<T: IntoIden>(col: T, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).not_null().to_owned()
}

fn text_null<T: IntoIden>(col: T, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).null().to_owned()
}

fn user_fk<T: IntoIden + 'static>(table: T, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLogEntries::Table)
                    .col(
                        ColumnDef::new(AuditLogEntries::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    // Null only for a denied attempt by a caller with no account.
                    .col(ColumnDef::new(AuditLogEntries::ActorId).uuid().null())
                    .col(text(AuditLogEntries::ActorEmail, 320))
                    .col(text(AuditLogEntries::Method, 128))
                    .col(text(AuditLogEntries::Target, 200))
                    .col(text(AuditLogEntries::Outcome, 16))
                    .col(text(AuditLogEntries::Reason, 500))
                    .col(ColumnDef::new(AuditLogEntries::Before).json().null())
                    .col(ColumnDef::new(AuditLogEntries::After).json().null())
                    .col(text_null(AuditLogEntries::RequestId, 64))
                    .col(text_null(AuditLogEntries::ClientAddress, 64))
                    .col(timestamp(AuditLogEntries::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // Newest first, over everything, by actor, and by target.
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_created")
                    .table(AuditLogEntries::Table)
                    .col((AuditLogEntries::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_actor_created")
                    .table(AuditLogEntries::Table)
                    .col(AuditLogEntries::ActorId)
                    .col((AuditLogEntries::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_target_created")
                    .table(AuditLogEntries::Table)
                    .col(AuditLogEntries::Target)
                    .col((AuditLogEntries::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION audit_log_is_append_only() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; \
                     $$ LANGUAGE plpgsql",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE \
                     ON audit_log_entries FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only()",
                )
                .await?;
            }
            _ => {
                for (name, op) in [
                    ("audit_log_no_update", "UPDATE"),
                    ("audit_log_no_delete", "DELETE"),
                ] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {name} BEFORE {op} ON audit_log_entries \
                         BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
                    ))
                    .await?;
                }
            }
        }

        manager
            .create_table(
                Table::create()
                    .table(UserSuspensions::Table)
                    .col(
                        ColumnDef::new(UserSuspensions::UserId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(UserSuspensions::SuspendedBy)
                            .uuid()
                            .not_null(),
                    )
                    .col(text(UserSuspensions::Reason, 500))
                    .col(timestamp(UserSuspensions::SuspendedAt))
                    .foreign_key(&mut user_fk(
                        UserSuspensions::Table,
                        UserSuspensions::UserId,
                    ))
                    .foreign_key(&mut user_fk(
                        UserSuspensions::Table,
                        UserSuspensions::SuspendedBy,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AdminRequests::Table)
                    .col(ColumnDef::new(AdminRequests::ActorId).uuid().not_null())
                    .col(text(AdminRequests::RequestId, 64))
                    .col(text(AdminRequests::Method, 128))
                    .col(text(AdminRequests::Fingerprint, 64))
                    // The encoded response, replayed for a repeated request id.
                    .col(ColumnDef::new(AdminRequests::Response).blob().not_null())
                    .col(timestamp(AdminRequests::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(AdminRequests::ActorId)
                            .col(AdminRequests::RequestId),
                    )
                    .foreign_key(&mut user_fk(AdminRequests::Table, AdminRequests::ActorId))
                    .to_owned(),
            )
            .await?;

        // The administrator's stated reason for a manual refund, shown with it.
        manager
            .alter_table(
                Table::alter()
                    .table(Verifications::Table)
                    .add_column(text_null(Verifications::RefundNote, 500))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Verifications::Table)
                    .drop_column(Verifications::RefundNote)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(AdminRequests::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(UserSuspensions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditLogEntries::Table).to_owned())
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS audit_log_is_append_only()")
                .await?;
        }
        Ok(())
    }
}
