//! Identity storage. Every function takes any connection (pool or transaction), so the
//! service decides what happens atomically.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr,
};
use uuid::Uuid;

use super::entities::{api_keys, backup_codes, mail_tokens, refresh_tokens, sessions, users};
use crate::error::StoreError;

/// What a user insert ran into.
#[derive(Debug, PartialEq, Eq)]
pub enum UserInsert {
    Inserted,
    EmailTaken,
    ReferralCodeTaken,
}

pub async fn insert_user(
    conn: &impl ConnectionTrait,
    user: users::Model,
) -> Result<UserInsert, StoreError> {
    match users::Entity::insert(user.into_active_model())
        .exec_without_returning(conn)
        .await
    {
        Ok(_) => Ok(UserInsert::Inserted),
        Err(error) => match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(message)) if message.contains("email") => {
                Ok(UserInsert::EmailTaken)
            }
            Some(SqlErr::UniqueConstraintViolation(message)) if message.contains("referral") => {
                Ok(UserInsert::ReferralCodeTaken)
            }
            _ => Err(error.into()),
        },
    }
}

pub async fn user_by_id(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<users::Model>, StoreError> {
    Ok(users::Entity::find_by_id(id).one(conn).await?)
}

pub async fn user_by_email(
    conn: &impl ConnectionTrait,
    email_lower: &str,
) -> Result<Option<users::Model>, StoreError> {
    Ok(users::Entity::find()
        .filter(users::Column::EmailLower.eq(email_lower))
        .one(conn)
        .await?)
}

pub async fn user_by_referral_code(
    conn: &impl ConnectionTrait,
    code: &str,
) -> Result<Option<users::Model>, StoreError> {
    Ok(users::Entity::find()
        .filter(users::Column::ReferralCode.eq(code))
        .one(conn)
        .await?)
}

pub async fn save_user(
    conn: &impl ConnectionTrait,
    user: users::ActiveModel,
) -> Result<users::Model, StoreError> {
    Ok(user.update(conn).await?)
}

/// Accepts a TOTP time step only if it is newer than the last one accepted (a code is
/// never accepted twice, even by two instances at once). Returns whether it was accepted.
pub async fn accept_totp_step(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    step: i64,
) -> Result<bool, StoreError> {
    let result = users::Entity::update_many()
        .col_expr(users::Column::TotpLastStep, Expr::value(step))
        .filter(users::Column::Id.eq(user_id))
        .filter(
            users::Column::TotpLastStep
                .is_null()
                .or(users::Column::TotpLastStep.lt(step)),
        )
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn insert_mail_token(
    conn: &impl ConnectionTrait,
    token: mail_tokens::Model,
) -> Result<(), StoreError> {
    mail_tokens::Entity::insert(token.into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// What presenting a mailed token found.
#[derive(Debug, PartialEq, Eq)]
pub enum MailTokenUse {
    Consumed { user_id: Uuid },
    Unknown,
    Expired,
    AlreadyUsed,
}

/// Spends a mailed token of the given purpose, once.
pub async fn consume_mail_token(
    conn: &impl ConnectionTrait,
    token_hash: &str,
    purpose: &str,
    now: DateTime<Utc>,
) -> Result<MailTokenUse, StoreError> {
    let Some(token) = mail_tokens::Entity::find()
        .filter(mail_tokens::Column::TokenHash.eq(token_hash))
        .filter(mail_tokens::Column::Purpose.eq(purpose))
        .one(conn)
        .await?
    else {
        return Ok(MailTokenUse::Unknown);
    };
    if token.used_at.is_some() {
        return Ok(MailTokenUse::AlreadyUsed);
    }
    if token.expires_at <= now {
        return Ok(MailTokenUse::Expired);
    }
    let spent = mail_tokens::Entity::update_many()
        .col_expr(mail_tokens::Column::UsedAt, Expr::value(now))
        .filter(mail_tokens::Column::Id.eq(token.id))
        .filter(mail_tokens::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(if spent.rows_affected == 1 {
        MailTokenUse::Consumed {
            user_id: token.user_id,
        }
    } else {
        MailTokenUse::AlreadyUsed
    })
}

/// Spends every unused token of a purpose for an account (a newer mail supersedes them).
pub async fn retire_mail_tokens(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    mail_tokens::Entity::update_many()
        .col_expr(mail_tokens::Column::UsedAt, Expr::value(now))
        .filter(mail_tokens::Column::UserId.eq(user_id))
        .filter(mail_tokens::Column::Purpose.eq(purpose))
        .filter(mail_tokens::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn insert_session(
    conn: &impl ConnectionTrait,
    session: sessions::Model,
) -> Result<(), StoreError> {
    sessions::Entity::insert(session.into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn session_by_id(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<sessions::Model>, StoreError> {
    Ok(sessions::Entity::find_by_id(id).one(conn).await?)
}

/// Revokes one session if it is not revoked yet.
pub async fn revoke_session(
    conn: &impl ConnectionTrait,
    id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .col_expr(sessions::Column::RevokeReason, Expr::value(reason))
        .filter(sessions::Column::Id.eq(id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Revokes every live session of an account; returns their ids.
pub async fn revoke_all_sessions(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let live: Vec<Uuid> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .into_tuple()
        .all(conn)
        .await?;
    if !live.is_empty() {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, Expr::value(now))
            .col_expr(sessions::Column::RevokeReason, Expr::value(reason))
            .filter(sessions::Column::Id.is_in(live.clone()))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(conn)
            .await?;
    }
    Ok(live)
}

pub async fn insert_refresh_token(
    conn: &impl ConnectionTrait,
    token: refresh_tokens::Model,
) -> Result<(), StoreError> {
    refresh_tokens::Entity::insert(token.into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn refresh_token_by_hash(
    conn: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<refresh_tokens::Model>, StoreError> {
    Ok(refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(token_hash))
        .one(conn)
        .await?)
}

/// Marks a refresh token spent; false if it already was (a reuse).
pub async fn spend_refresh_token(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
        .filter(refresh_tokens::Column::Id.eq(id))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn insert_api_key(
    conn: &impl ConnectionTrait,
    key: api_keys::Model,
) -> Result<(), StoreError> {
    api_keys::Entity::insert(key.into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn api_key_by_hash(
    conn: &impl ConnectionTrait,
    key_hash: &str,
) -> Result<Option<api_keys::Model>, StoreError> {
    Ok(api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(key_hash))
        .one(conn)
        .await?)
}

pub async fn api_key_of_user(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<api_keys::Model>, StoreError> {
    Ok(api_keys::Entity::find_by_id(id)
        .filter(api_keys::Column::UserId.eq(user_id))
        .one(conn)
        .await?)
}

/// One page of an account's keys, newest first (ids are UUIDv7, so id order is creation
/// order); `before` is the last id of the previous page. Fetches `limit + 1` rows so the
/// caller knows whether another page follows.
pub async fn list_api_keys(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    before: Option<Uuid>,
    show_revoked: bool,
    limit: u64,
) -> Result<Vec<api_keys::Model>, StoreError> {
    let mut query = api_keys::Entity::find().filter(api_keys::Column::UserId.eq(user_id));
    if let Some(before) = before {
        query = query.filter(api_keys::Column::Id.lt(before));
    }
    if !show_revoked {
        query = query.filter(api_keys::Column::RevokedAt.is_null());
    }
    Ok(query
        .order_by_desc(api_keys::Column::Id)
        .limit(limit + 1)
        .all(conn)
        .await?)
}

pub async fn revoke_api_key(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(now))
        .filter(api_keys::Column::Id.eq(id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Records when a key was last used, never moving the time backwards.
pub async fn touch_api_key(
    conn: &impl ConnectionTrait,
    id: Uuid,
    used_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    api_keys::Entity::update_many()
        .col_expr(api_keys::Column::LastUsedAt, Expr::value(used_at))
        .filter(api_keys::Column::Id.eq(id))
        .filter(
            api_keys::Column::LastUsedAt
                .is_null()
                .or(api_keys::Column::LastUsedAt.lt(used_at)),
        )
        .exec(conn)
        .await?;
    Ok(())
}

/// Replaces an account's pending (not yet confirmed) backup codes.
pub async fn replace_pending_backup_codes(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    hashes: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    backup_codes::Entity::delete_many()
        .filter(backup_codes::Column::UserId.eq(user_id))
        .filter(backup_codes::Column::Active.eq(false))
        .exec(conn)
        .await?;
    let rows = hashes.iter().map(|hash| {
        backup_codes::Model {
            id: Uuid::now_v7(),
            user_id,
            code_hash: hash.clone(),
            active: false,
            used_at: None,
            created_at: now,
        }
        .into_active_model()
    });
    backup_codes::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Makes the pending backup codes the account's codes, dropping any older ones.
pub async fn activate_pending_backup_codes(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<(), StoreError> {
    backup_codes::Entity::delete_many()
        .filter(backup_codes::Column::UserId.eq(user_id))
        .filter(backup_codes::Column::Active.eq(true))
        .exec(conn)
        .await?;
    backup_codes::Entity::update_many()
        .col_expr(backup_codes::Column::Active, Expr::value(true))
        .filter(backup_codes::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Spends an active backup code; false if there is no such unused code.
pub async fn spend_backup_code(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    code_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result = backup_codes::Entity::update_many()
        .col_expr(backup_codes::Column::UsedAt, Expr::value(now))
        .filter(backup_codes::Column::UserId.eq(user_id))
        .filter(backup_codes::Column::CodeHash.eq(code_hash))
        .filter(backup_codes::Column::Active.eq(true))
        .filter(backup_codes::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn delete_backup_codes(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<(), StoreError> {
    backup_codes::Entity::delete_many()
        .filter(backup_codes::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Turns a stored row into an active model whose fields can be set and saved.
pub fn editable(user: users::Model) -> users::ActiveModel {
    let mut model = user.into_active_model();
    model.updated_at = Set(Utc::now());
    model
}
