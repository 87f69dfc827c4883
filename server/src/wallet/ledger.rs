//! The ledger's storage and the operations other rooms call: hold, capture, release, credit,
//! debit and adjust. Each takes the caller's transaction, so the money moves in the same
//! database transaction as the business row it belongs to, and each is idempotent on its
//! business key: the unique index on `journal_entries.business_key` refuses a second copy.
//!
//! Capturing and releasing a hold share one key (`settle:{reference}`), so exactly one of
//! them can ever happen to a hold, whatever races.
use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::domain::{
    self, AccountKind, AccountRef, CURRENCY, EntryKind, LedgerError, Posting, check_balanced,
};
use super::entities::{journal_entries, journal_lines, ledger_accounts};

/// What a posting call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posted {
    /// The entry was written now.
    Now(Uuid),
    /// An entry with this business key already existed; nothing was written.
    Already(Uuid),
}

impl Posted {
    pub fn entry_id(self) -> Uuid {
        match self {
            Posted::Now(id) | Posted::Already(id) => id,
        }
    }
}

/// What settling a hold did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// This call captured or released it.
    Now,
    /// It had already been settled the same way.
    Already,
    /// It had already been settled the other way (captured when asked to release, or the
    /// reverse); nothing was written.
    OtherWay(EntryKind),
}

/// Finds or creates an account; returns its id.
async fn account_id(conn: &impl ConnectionTrait, account: AccountRef) -> Result<Uuid, LedgerError> {
    let code = account.code();
    if let Some(id) = find_account(conn, &code).await? {
        return Ok(id);
    }
    let now = Utc::now();
    let row = ledger_accounts::Model {
        id: Uuid::now_v7(),
        code: code.clone(),
        kind: account.kind.as_str().to_owned(),
        owner_id: account.owning_user(),
        currency: CURRENCY.to_owned(),
        balance: 0,
        created_at: now,
        updated_at: now,
    };
    // Two first movements of one wallet may race to create it: the loser reads the winner's.
    ledger_accounts::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::column(ledger_accounts::Column::Code)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    find_account(conn, &code)
        .await?
        .ok_or_else(|| LedgerError::Store(crate::error::StoreError::Corrupt(code)))
}

/// The ids of `accounts` by code, creating any that do not exist yet (one read when they
/// all do).
async fn account_ids(
    conn: &impl ConnectionTrait,
    accounts: &[AccountRef],
) -> Result<std::collections::HashMap<String, Uuid>, LedgerError> {
    let codes: Vec<String> = accounts.iter().map(AccountRef::code).collect();
    let found: Vec<(Uuid, String)> = ledger_accounts::Entity::find()
        .select_only()
        .column(ledger_accounts::Column::Id)
        .column(ledger_accounts::Column::Code)
        .filter(ledger_accounts::Column::Code.is_in(codes.iter().cloned()))
        .into_tuple()
        .all(conn)
        .await?;
    let mut ids: std::collections::HashMap<String, Uuid> =
        found.into_iter().map(|(id, code)| (code, id)).collect();
    for (account, code) in accounts.iter().zip(codes) {
        if let std::collections::hash_map::Entry::Vacant(slot) = ids.entry(code) {
            slot.insert(account_id(conn, *account).await?);
        }
    }
    Ok(ids)
}

async fn find_account(
    conn: &impl ConnectionTrait,
    code: &str,
) -> Result<Option<Uuid>, LedgerError> {
    Ok(ledger_accounts::Entity::find()
        .select_only()
        .column(ledger_accounts::Column::Id)
        .filter(ledger_accounts::Column::Code.eq(code))
        .into_tuple()
        .one(conn)
        .await?)
}

/// Writes one balanced entry under `business_key`, or nothing if the key exists.
pub async fn post(
    txn: &DatabaseTransaction,
    business_key: &str,
    kind: EntryKind,
    user: Option<Uuid>,
    reference: &str,
    memo: &str,
    postings: &[Posting],
) -> Result<Posted, LedgerError> {
    let header = Header {
        business_key,
        kind,
        user,
        reference,
        memo,
        at: Utc::now(),
    };
    post_dated(txn, &header, postings).await
}

/// What an entry is, apart from its lines.
pub struct Header<'a> {
    pub business_key: &'a str,
    pub kind: EntryKind,
    pub user: Option<Uuid>,
    pub reference: &'a str,
    pub memo: &'a str,
    /// The time the entry is dated: when it happened in business terms (a renewal is dated
    /// at the start of the period it pays for).
    pub at: chrono::DateTime<Utc>,
}

/// [`post`], dated `header.at`.
pub async fn post_dated(
    txn: &DatabaseTransaction,
    header: &Header<'_>,
    postings: &[Posting],
) -> Result<Posted, LedgerError> {
    let Header {
        business_key,
        kind,
        user,
        reference,
        memo,
        at: now,
    } = *header;
    check_balanced(postings)?;
    let entry_id = Uuid::now_v7();
    let inserted = journal_entries::Entity::insert(
        journal_entries::Model {
            id: entry_id,
            business_key: business_key.to_owned(),
            kind: kind.as_str().to_owned(),
            user_id: user,
            reference: reference.to_owned(),
            memo: memo.chars().take(500).collect(),
            created_at: now,
        }
        .into_active_model(),
    )
    .on_conflict(
        OnConflict::column(journal_entries::Column::BusinessKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    if inserted == 0 {
        let existing = entry_by_key(txn, business_key).await?.ok_or_else(|| {
            LedgerError::Store(crate::error::StoreError::Corrupt(business_key.to_owned()))
        })?;
        return Ok(Posted::Already(existing.id));
    }

    // Resolve the accounts in one read, then touch them in one order (see [`lock_order`]):
    // concurrent entries lock rows in the same order and cannot deadlock.
    let accounts: Vec<AccountRef> = postings.iter().map(|p| p.account).collect();
    let ids = account_ids(txn, &accounts).await?;
    let mut lines = Vec::with_capacity(postings.len());
    for posting in postings {
        let id = ids.get(&posting.account.code()).copied().ok_or_else(|| {
            LedgerError::Store(crate::error::StoreError::Corrupt(posting.account.code()))
        })?;
        lines.push((id, *posting));
    }
    lines.sort_by_key(|(id, posting)| lock_order(posting.account.kind, *id));
    let mut rows = Vec::with_capacity(lines.len());
    for (account, posting) in lines {
        let balance_after = if posting.account.kind.is_customer() {
            // The condition keeps a customer's account at or above zero, whatever runs
            // concurrently: the row lock serialises movements of one wallet. The new
            // balance comes back from the same statement.
            let updated = ledger_accounts::Entity::update_many()
                .col_expr(
                    ledger_accounts::Column::Balance,
                    Expr::col(ledger_accounts::Column::Balance).add(posting.amount),
                )
                .col_expr(ledger_accounts::Column::UpdatedAt, Expr::value(now))
                .filter(ledger_accounts::Column::Id.eq(account))
                .filter(
                    Expr::col(ledger_accounts::Column::Balance)
                        .add(posting.amount)
                        .gte(0),
                )
                .exec_with_returning(txn)
                .await?;
            match updated.first() {
                Some(row) => Some(row.balance),
                None => return Err(LedgerError::InsufficientFunds),
            }
        } else {
            None
        };
        rows.push(
            journal_lines::Model {
                id: Uuid::now_v7(),
                entry_id,
                account_id: account,
                amount: posting.amount,
                balance_after,
                created_at: now,
            }
            .into_active_model(),
        );
    }
    journal_lines::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(Posted::Now(entry_id))
}

/// The order every transaction touches accounts in: wallets first, then holds accounts,
/// then the rest, each by id. One order for all means no two movements can deadlock; the
/// one-statement hold of [`hold_ctes`] touches the wallet, then the holds account, and
/// relies on it.
fn lock_order(kind: AccountKind, id: Uuid) -> (u8, Uuid) {
    let rank = match kind {
        AccountKind::Wallet => 0,
        AccountKind::Holds => 1,
        _ => 2,
    };
    (rank, id)
}

async fn entry_by_key(
    conn: &impl ConnectionTrait,
    business_key: &str,
) -> Result<Option<journal_entries::Model>, LedgerError> {
    Ok(journal_entries::Entity::find()
        .filter(journal_entries::Column::BusinessKey.eq(business_key))
        .one(conn)
        .await?)
}

/// Holds `amount` from the user's wallet for `reference` (a verification):
/// `INSUFFICIENT_FUNDS` if the wallet cannot afford it.
pub async fn hold(
    txn: &DatabaseTransaction,
    user: Uuid,
    amount: i64,
    reference: &str,
    memo: &str,
) -> Result<Posted, LedgerError> {
    domain::check_amount(amount)?;
    post(
        txn,
        &format!("hold:{reference}"),
        EntryKind::VerificationHold,
        Some(user),
        reference,
        memo,
        &domain::transfer(AccountRef::wallet(user), AccountRef::holds(user), amount),
    )
    .await
}

/// A UUIDv7 minted by PostgreSQL when the expression runs (`clock_timestamp()`, not the
/// statement's start): the milliseconds, then the fraction of the millisecond in the 12
/// bits RFC 9562 allows for more clock precision, then random bits. For lines written by a
/// statement that locks its wallet first: minted under the lock, their ids follow the
/// order in which the wallet's balance moved, like the ids `post` mints after its update.
/// It is an uncorrelated subquery, so PostgreSQL evaluates it once where it appears, when
/// first needed: use it where one row is selected.
const SQL_UUID_V7: &str = "(SELECT encode(\
       substring(int8send(floor(ms)::bigint) from 3) \
       || int2send((28672 + floor((ms - floor(ms)) * 4096))::smallint) \
       || substring(uuid_send(gen_random_uuid()) from 9), 'hex')::uuid \
     FROM (SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms) AS now_ms)";

/// [`hold`] as common table expressions of one PostgreSQL statement, for a caller that
/// writes its business row in the same statement (one round trip and one commit instead of
/// a transaction of several). It writes the same rows as [`hold`]: the wallet debited only
/// if it can afford `amount` (the conditional update), the holds account credited (created
/// on the first hold), the entry under `hold:{reference}` and its two lines with the
/// balances after. They end in `hold_entry`, which has one row if the hold was placed and
/// none if the wallet could not afford it (or `unless` held); then nothing of it is
/// written, and the caller's own inserts, selecting `FROM hold_entry`, write nothing either.
///
/// `unless`, if given, is a condition (SQL, its values bound in `params`) under which no
/// hold is placed at all: the caller's "this was done already".
pub fn hold_ctes(
    params: &mut crate::store::Params,
    user: Uuid,
    amount: i64,
    reference: &str,
    memo: &str,
    now: chrono::DateTime<Utc>,
    unless: Option<&str>,
) -> Result<String, LedgerError> {
    domain::check_amount(amount)?;
    let wallet = AccountRef::wallet(user);
    let holds = AccountRef::holds(user);
    let unless = unless.map_or_else(String::new, |condition| format!(" AND NOT ({condition})"));
    let (amount, now, user_id) = (params.bind(amount), params.bind(now), params.bind(user));
    let wallet_code = params.bind(wallet.code());
    let holds_id = params.bind(Uuid::now_v7());
    let holds_code = params.bind(holds.code());
    let holds_kind = params.bind(holds.kind.as_str());
    let currency = params.bind(CURRENCY);
    let entry = params.bind(Uuid::now_v7());
    let key = params.bind(format!("hold:{reference}"));
    let kind = params.bind(EntryKind::VerificationHold.as_str());
    let reference = params.bind(reference);
    let memo = params.bind(memo.chars().take(500).collect::<String>());
    // The lines' ids are minted by PostgreSQL once the wallet is locked, the wallet's
    // first, as `post` mints them after its update: a wallet's lines list in the order its
    // balance moved (see [`SQL_UUID_V7`]).
    let (wallet_line, holds_line) = (SQL_UUID_V7, SQL_UUID_V7);
    Ok(format!(
        "hold_wallet AS (\
           UPDATE ledger_accounts SET balance = balance - {amount}, updated_at = {now} \
           WHERE code = {wallet_code} AND balance >= {amount}{unless} RETURNING id, balance), \
         hold_account AS (\
           INSERT INTO ledger_accounts \
             (id, code, kind, owner_id, currency, balance, created_at, updated_at) \
           SELECT {holds_id}, {holds_code}, {holds_kind}, {user_id}, {currency}, {amount}, \
             {now}, {now} FROM hold_wallet \
           ON CONFLICT (code) DO UPDATE SET \
             balance = ledger_accounts.balance + EXCLUDED.balance, \
             updated_at = EXCLUDED.updated_at \
           RETURNING id, balance), \
         hold_entry AS (\
           INSERT INTO journal_entries (id, business_key, kind, user_id, reference, memo, \
             created_at) \
           SELECT {entry}, {key}, {kind}, {user_id}, {reference}, {memo}, {now} \
           FROM hold_account RETURNING id), \
         hold_lines AS (\
           INSERT INTO journal_lines (id, entry_id, account_id, amount, balance_after, \
             created_at) \
           SELECT {wallet_line}, e.id, w.id, -{amount}, w.balance, {now} \
             FROM hold_entry e, hold_wallet w \
           UNION ALL \
           SELECT {holds_line}, e.id, a.id, {amount}, a.balance, {now} \
             FROM hold_entry e, hold_account a)"
    ))
}

/// A release for [`release_ctes`].
#[derive(Clone, Copy, Debug)]
pub struct Release<'a> {
    pub user: Uuid,
    pub amount: i64,
    pub reference: &'a str,
    pub memo: &'a str,
    pub wallet_line: Uuid,
    pub now: chrono::DateTime<Utc>,
}

/// [`release`] as common table expressions of one PostgreSQL statement, written only if
/// the CTE `gate` yields a row (the business row's conditional update) and the hold under
/// `hold:{reference}` is of `amount` (the caller's expectation: the verification's price):
/// the entry under `settle:{reference}` (unless the hold was settled already), the wallet
/// credited and the holds account debited, in the order [`post`] uses, and their lines,
/// the wallet's with the id `wallet_line` (the `transactions/{id}` the customer sees; mint
/// it just before the statement). They end in `settle_holds`, which has one row if the
/// hold was released now.
///
/// When it has none, part of the release may still have been written (the wallet's credit,
/// say, with the holds account unable to give `amount` back): the caller **must** run the
/// statement in a transaction and roll it back, then settle the slow way ([`release`]),
/// which says what was wrong.
pub fn release_ctes(
    params: &mut crate::store::Params,
    gate: &str,
    release: &Release<'_>,
) -> Result<String, LedgerError> {
    let Release {
        user,
        amount,
        reference,
        memo,
        wallet_line,
        now,
    } = *release;
    domain::check_amount(amount)?;
    let (amount, now, user_id) = (params.bind(amount), params.bind(now), params.bind(user));
    let wallet_code = params.bind(AccountRef::wallet(user).code());
    let holds_code = params.bind(AccountRef::holds(user).code());
    let hold_key = params.bind(format!("hold:{reference}"));
    let entry = params.bind(Uuid::now_v7());
    let key = params.bind(format!("settle:{reference}"));
    let kind = params.bind(EntryKind::VerificationRefund.as_str());
    let reference = params.bind(reference);
    let memo = params.bind(memo.chars().take(500).collect::<String>());
    let (wallet_line, holds_line) = (params.bind(wallet_line), SQL_UUID_V7);
    Ok(format!(
        "settle_held AS (\
           SELECT l.amount FROM journal_entries e \
           JOIN journal_lines l ON l.entry_id = e.id \
           JOIN ledger_accounts a ON a.id = l.account_id \
           WHERE e.business_key = {hold_key} AND a.code = {holds_code} \
             AND l.amount = {amount}), \
         settle_entry AS (\
           INSERT INTO journal_entries (id, business_key, kind, user_id, reference, memo, \
             created_at) \
           SELECT {entry}, {key}, {kind}, {user_id}, {reference}, {memo}, {now} \
           FROM {gate}, settle_held \
           ON CONFLICT (business_key) DO NOTHING RETURNING id), \
         settle_wallet AS (\
           UPDATE ledger_accounts SET balance = balance + {amount}, updated_at = {now} \
           WHERE code = {wallet_code} AND EXISTS (SELECT 1 FROM settle_entry) \
           RETURNING id, balance), \
         settle_holds AS (\
           UPDATE ledger_accounts SET balance = balance - {amount}, updated_at = {now} \
           WHERE code = {holds_code} AND balance >= {amount} \
             AND EXISTS (SELECT 1 FROM settle_wallet) \
           RETURNING id, balance), \
         settle_lines AS (\
           INSERT INTO journal_lines (id, entry_id, account_id, amount, balance_after, \
             created_at) \
           SELECT {wallet_line}, e.id, w.id, {amount}, w.balance, {now} \
             FROM settle_entry e, settle_wallet w, settle_holds h \
           UNION ALL \
           SELECT {holds_line}, e.id, h.id, -{amount}, h.balance, {now} \
             FROM settle_entry e, settle_holds h)"
    ))
}

/// The user and amount of the hold placed for `reference`.
async fn held(txn: &DatabaseTransaction, reference: &str) -> Result<(Uuid, i64), LedgerError> {
    let entry = entry_by_key(txn, &format!("hold:{reference}"))
        .await?
        .ok_or(LedgerError::HoldNotFound)?;
    let user = entry.user_id.ok_or(LedgerError::HoldNotFound)?;
    let holds = account_id(txn, AccountRef::holds(user)).await?;
    let amount: Option<i64> = journal_lines::Entity::find()
        .select_only()
        .column(journal_lines::Column::Amount)
        .filter(journal_lines::Column::EntryId.eq(entry.id))
        .filter(journal_lines::Column::AccountId.eq(holds))
        .into_tuple()
        .one(txn)
        .await?;
    Ok((user, amount.ok_or(LedgerError::HoldNotFound)?))
}

/// A tenant's share of a sale: booked to its margin account instead of the platform's
/// revenue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantShare {
    pub tenant: Uuid,
    pub margin: i64,
}

/// The lines that move `amount` between `customer_side` and the platform's revenue, with
/// `share` of it going to (or coming from) the tenant's margin account instead. `sign` 1:
/// from the customer side to revenue (a capture); -1: back (a refund).
fn revenue_lines(
    customer_side: AccountRef,
    amount: i64,
    share: Option<TenantShare>,
    sign: i64,
) -> Vec<Posting> {
    let margin = share.map_or(0, |s| s.margin.clamp(0, amount));
    let mut lines = vec![
        Posting {
            account: customer_side,
            amount: -sign * amount,
        },
        Posting {
            account: AccountRef::platform(AccountKind::Revenue),
            amount: sign * (amount - margin),
        },
    ];
    if let Some(share) = share.filter(|_| margin > 0) {
        lines.push(Posting {
            account: AccountRef::tenant_margin(share.tenant),
            amount: sign * margin,
        });
    }
    lines
}

async fn settle(
    txn: &DatabaseTransaction,
    reference: &str,
    kind: EntryKind,
    memo: &str,
    share: Option<TenantShare>,
) -> Result<Settled, LedgerError> {
    let (user, amount) = held(txn, reference).await?;
    let lines = match kind {
        EntryKind::VerificationCapture => revenue_lines(AccountRef::holds(user), amount, share, 1),
        _ => domain::transfer(AccountRef::holds(user), AccountRef::wallet(user), amount),
    };
    let key = format!("settle:{reference}");
    match post(txn, &key, kind, Some(user), reference, memo, &lines).await? {
        Posted::Now(_) => Ok(Settled::Now),
        Posted::Already(_) => {
            let existing = entry_by_key(txn, &key)
                .await?
                .and_then(|e| EntryKind::parse(&e.kind));
            match existing {
                Some(existing) if existing == kind => Ok(Settled::Already),
                Some(other) => Ok(Settled::OtherWay(other)),
                None => Err(LedgerError::Store(crate::error::StoreError::Corrupt(key))),
            }
        }
    }
}

/// The wallet line (`transactions/{id}`) of the entry that gave the hold for `reference`
/// back, if it was released.
pub async fn release_line(
    conn: &impl ConnectionTrait,
    reference: &str,
    user: Uuid,
) -> Result<Option<Uuid>, LedgerError> {
    match entry_by_key(conn, &format!("settle:{reference}")).await? {
        Some(entry) if entry.kind == EntryKind::VerificationRefund.as_str() => {
            wallet_line(conn, entry.id, user).await
        }
        _ => Ok(None),
    }
}

/// Makes a hold's charge final (an SMS arrived): holds → revenue, less the tenant's
/// share (to its margin account) when the customer bought in a tenant's storefront.
pub async fn capture(
    txn: &DatabaseTransaction,
    reference: &str,
    memo: &str,
    share: Option<TenantShare>,
) -> Result<Settled, LedgerError> {
    settle(txn, reference, EntryKind::VerificationCapture, memo, share).await
}

/// Gives a hold back to the wallet (cancelled, expired, failed): holds → wallet.
pub async fn release(
    txn: &DatabaseTransaction,
    reference: &str,
    memo: &str,
) -> Result<Settled, LedgerError> {
    settle(txn, reference, EntryKind::VerificationRefund, memo, None).await
}

/// Gives a captured charge back by hand (an administrator's refund of a completed
/// verification): revenue → wallet, under `refund:{reference}`, so at most once. Returns the
/// posting and the wallet line (`transactions/{id}`).
pub async fn refund_capture(
    txn: &DatabaseTransaction,
    user: Uuid,
    amount: i64,
    reference: &str,
    memo: &str,
    share: Option<TenantShare>,
) -> Result<(Posted, Option<Uuid>), LedgerError> {
    domain::check_amount(amount)?;
    // The tenant gives its margin back along with the platform's revenue.
    let posted = post(
        txn,
        &format!("refund:{reference}"),
        EntryKind::VerificationRefund,
        Some(user),
        reference,
        memo,
        &revenue_lines(AccountRef::wallet(user), amount, share, -1),
    )
    .await?;
    let line = wallet_line(txn, posted.entry_id(), user).await?;
    Ok((posted, line))
}

/// Money into a wallet (a confirmed top-up): gateway clearing → wallet.
pub async fn credit(
    txn: &DatabaseTransaction,
    user: Uuid,
    amount: i64,
    business_key: &str,
    reference: &str,
    memo: &str,
) -> Result<Posted, LedgerError> {
    domain::check_amount(amount)?;
    post(
        txn,
        business_key,
        EntryKind::TopUp,
        Some(user),
        reference,
        memo,
        &domain::transfer(
            AccountRef::platform(AccountKind::GatewayClearing),
            AccountRef::wallet(user),
            amount,
        ),
    )
    .await
}

/// A charge from a wallet (a subscription fee, an overage charge): wallet → revenue.
pub async fn debit(
    txn: &DatabaseTransaction,
    user: Uuid,
    amount: i64,
    kind: EntryKind,
    business_key: &str,
    reference: &str,
    memo: &str,
) -> Result<Posted, LedgerError> {
    domain::check_amount(amount)?;
    post(
        txn,
        business_key,
        kind,
        Some(user),
        reference,
        memo,
        &domain::transfer(
            AccountRef::wallet(user),
            AccountRef::platform(AccountKind::Revenue),
            amount,
        ),
    )
    .await
}

/// [`debit`] dated `header.at` (billing, which runs on its own clock).
pub async fn debit_dated(
    txn: &DatabaseTransaction,
    user: Uuid,
    amount: i64,
    header: &Header<'_>,
) -> Result<Posted, LedgerError> {
    domain::check_amount(amount)?;
    post_dated(
        txn,
        header,
        &domain::transfer(
            AccountRef::wallet(user),
            AccountRef::platform(AccountKind::Revenue),
            amount,
        ),
    )
    .await
}

/// An administrator's correction, positive or negative, with its reason.
pub async fn adjust(
    txn: &DatabaseTransaction,
    user: Uuid,
    amount: i64,
    business_key: &str,
    reason: &str,
) -> Result<Posted, LedgerError> {
    domain::check_signed_amount(amount)?;
    post(
        txn,
        business_key,
        EntryKind::Adjustment,
        Some(user),
        "",
        reason,
        &domain::transfer(
            AccountRef::platform(AccountKind::Adjustments),
            AccountRef::wallet(user),
            amount,
        ),
    )
    .await
}

/// A customer's wallet at a glance.
pub struct WalletSummary {
    /// What can be spent now.
    pub available: i64,
    /// What is held for open verifications.
    pub held: i64,
    /// When the spendable balance last changed; `None` if it never moved.
    pub updated_at: Option<chrono::DateTime<Utc>>,
}

/// Reads the customer's wallet and holds accounts in one query.
pub async fn wallet_summary(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> Result<WalletSummary, LedgerError> {
    let wallet = AccountRef::wallet(user).code();
    let holds = AccountRef::holds(user).code();
    let accounts = ledger_accounts::Entity::find()
        .filter(ledger_accounts::Column::Code.is_in([wallet.clone(), holds]))
        .all(conn)
        .await?;
    let mut summary = WalletSummary {
        available: 0,
        held: 0,
        updated_at: None,
    };
    for account in accounts {
        if account.code == wallet {
            summary.available = account.balance;
            summary.updated_at = Some(account.updated_at);
        } else {
            summary.held = account.balance;
        }
    }
    Ok(summary)
}

/// A customer's spendable balance and the amount held for open verifications.
pub async fn balances(conn: &impl ConnectionTrait, user: Uuid) -> Result<(i64, i64), LedgerError> {
    let summary = wallet_summary(conn, user).await?;
    Ok((summary.available, summary.held))
}

/// One movement of a customer's wallet: its line and the entry it belongs to.
pub struct WalletMovement {
    pub line: journal_lines::Model,
    pub entry: journal_entries::Model,
}

/// A page of a wallet's movements, newest first (line ids are UUIDv7), optionally of one
/// kind; `before` is the last line id of the previous page. Fetches `limit + 1` so the
/// caller knows whether another page follows.
pub async fn wallet_movements(
    conn: &impl ConnectionTrait,
    user: Uuid,
    kind: Option<EntryKind>,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<WalletMovement>, LedgerError> {
    let Some(wallet) = find_account(conn, &AccountRef::wallet(user).code()).await? else {
        return Ok(Vec::new());
    };
    let mut query =
        journal_lines::Entity::find().filter(journal_lines::Column::AccountId.eq(wallet));
    if let Some(before) = before {
        query = query.filter(journal_lines::Column::Id.lt(before));
    }
    if let Some(kind) = kind {
        query = query.filter(
            journal_lines::Column::EntryId.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(journal_entries::Column::Id)
                    .from(journal_entries::Entity)
                    .and_where(journal_entries::Column::UserId.eq(user))
                    .and_where(journal_entries::Column::Kind.eq(kind.as_str()))
                    .to_owned(),
            ),
        );
    }
    let lines = query
        .order_by_desc(journal_lines::Column::Id)
        .limit(limit + 1)
        .all(conn)
        .await?;
    let entry_ids: Vec<Uuid> = lines.iter().map(|l| l.entry_id).collect();
    let mut entries: std::collections::HashMap<Uuid, journal_entries::Model> =
        journal_entries::Entity::find()
            .filter(journal_entries::Column::Id.is_in(entry_ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
    lines
        .into_iter()
        .map(|line| {
            let entry = entries.remove(&line.entry_id).ok_or_else(|| {
                LedgerError::Store(crate::error::StoreError::Corrupt(format!(
                    "entry of line {}",
                    line.id
                )))
            })?;
            Ok(WalletMovement { line, entry })
        })
        .collect()
}

/// The id of the line an entry wrote to the user's wallet (what `ListTransactions` names
/// `transactions/{id}`), if it wrote one.
pub async fn wallet_line(
    conn: &impl ConnectionTrait,
    entry: Uuid,
    user: Uuid,
) -> Result<Option<Uuid>, LedgerError> {
    let Some(wallet) = find_account(conn, &AccountRef::wallet(user).code()).await? else {
        return Ok(None);
    };
    Ok(journal_lines::Entity::find()
        .select_only()
        .column(journal_lines::Column::Id)
        .filter(journal_lines::Column::EntryId.eq(entry))
        .filter(journal_lines::Column::AccountId.eq(wallet))
        .into_tuple()
        .one(conn)
        .await?)
}

/// [`account_total`] of several accounts in two queries, by account code (an account that
/// never moved is missing: its total is zero).
pub async fn account_totals(
    conn: &impl ConnectionTrait,
    accounts: &[AccountRef],
) -> Result<std::collections::HashMap<String, i64>, LedgerError> {
    let codes: Vec<String> = accounts.iter().map(AccountRef::code).collect();
    if codes.is_empty() {
        return Ok(Default::default());
    }
    let found: Vec<(Uuid, String)> = ledger_accounts::Entity::find()
        .select_only()
        .column(ledger_accounts::Column::Id)
        .column(ledger_accounts::Column::Code)
        .filter(ledger_accounts::Column::Code.is_in(codes))
        .into_tuple()
        .all(conn)
        .await?;
    if found.is_empty() {
        return Ok(Default::default());
    }
    let sums: Vec<(Uuid, Option<i64>)> = journal_lines::Entity::find()
        .select_only()
        .column(journal_lines::Column::AccountId)
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(amount), 0) AS BIGINT)"),
            "total",
        )
        .filter(journal_lines::Column::AccountId.is_in(found.iter().map(|(id, _)| *id)))
        .group_by(journal_lines::Column::AccountId)
        .into_tuple()
        .all(conn)
        .await?;
    let code_of: std::collections::HashMap<Uuid, String> = found.into_iter().collect();
    Ok(sums
        .into_iter()
        .filter_map(|(id, total)| Some((code_of.get(&id)?.clone(), total.unwrap_or(0))))
        .collect())
}

/// The sum of an account's lines: the balance of a platform or tenant account (they keep
/// no balance column). Zero for an account that never moved.
pub async fn account_total(
    conn: &impl ConnectionTrait,
    account: AccountRef,
) -> Result<i64, LedgerError> {
    let Some(id) = find_account(conn, &account.code()).await? else {
        return Ok(0);
    };
    let backend = conn.get_database_backend();
    let placeholder = match backend {
        sea_orm::DbBackend::Postgres => "$1",
        _ => "?",
    };
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM journal_lines WHERE account_id = {placeholder}"
    );
    let row = conn
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            vec![id.into()],
        ))
        .await
        .map_err(crate::error::StoreError::from)?;
    let total: Option<i64> = row.and_then(|row| row.try_get_by_index(0).ok());
    Ok(total.unwrap_or(0))
}
