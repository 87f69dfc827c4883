//! The ledger against the real database: each operation, its idempotency, and random
//! operations from many tasks at once, after which the books are checked from the database.
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use namaskah_server::wallet::domain::{EntryKind, LedgerError};
use namaskah_server::wallet::ledger::{self, Posted, Settled};
use rand::Rng;
use sea_orm::{DatabaseConnection, TransactionTrait};
use uuid::Uuid;

/// One ledger operation.
enum Op<'a> {
    Credit(Uuid, i64, &'a str),
    Hold(Uuid, i64, &'a str),
    Capture(&'a str),
    Release(&'a str),
    Adjust(Uuid, i64, &'a str),
    Fee(Uuid, i64, &'a str),
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Posted(Posted),
    Settled(Settled),
}

/// Runs one ledger operation in its own transaction: committed if it succeeds, rolled back
/// (nothing written) if it fails.
async fn run(db: &DatabaseConnection, op: Op<'_>) -> Result<Outcome, LedgerError> {
    let txn = db.begin().await?;
    let result = match op {
        Op::Credit(user, amount, key) => ledger::credit(&txn, user, amount, key, key, "top-up")
            .await
            .map(Outcome::Posted),
        Op::Hold(user, amount, reference) => ledger::hold(&txn, user, amount, reference, "hold")
            .await
            .map(Outcome::Posted),
        Op::Capture(reference) => ledger::capture(&txn, reference, "sms", None)
            .await
            .map(Outcome::Settled),
        Op::Release(reference) => ledger::release(&txn, reference, "expired")
            .await
            .map(Outcome::Settled),
        Op::Adjust(user, amount, key) => ledger::adjust(&txn, user, amount, key, "correction")
            .await
            .map(Outcome::Posted),
        Op::Fee(user, amount, key) => ledger::debit(
            &txn,
            user,
            amount,
            EntryKind::SubscriptionFee,
            key,
            "plans/pro",
            "Pro",
        )
        .await
        .map(Outcome::Posted),
    };
    match result {
        Ok(outcome) => {
            txn.commit().await?;
            Ok(outcome)
        }
        Err(error) => {
            txn.rollback().await?;
            Err(error)
        }
    }
}

fn now(outcome: &Result<Outcome, LedgerError>) -> bool {
    matches!(
        outcome,
        Ok(Outcome::Posted(Posted::Now(_))) | Ok(Outcome::Settled(Settled::Now))
    )
}

#[tokio::test]
async fn holds_capture_or_release_exactly_once_and_never_overdraw() {
    let app = spawn_app().await;
    let db = app.state.db.clone();
    let user = user_id(&app).await;

    assert!(now(&run(&db, Op::Credit(user, 1_000, "topup:r1")).await));
    let again = run(&db, Op::Credit(user, 1_000, "topup:r1")).await;
    assert!(
        matches!(again, Ok(Outcome::Posted(Posted::Already(_)))),
        "{again:?}"
    );
    assert_eq!(ledger::balances(&db, user).await.unwrap(), (1_000, 0));

    assert!(now(&run(&db, Op::Hold(user, 300, "v1")).await));
    assert_eq!(ledger::balances(&db, user).await.unwrap(), (700, 300));
    assert!(now(&run(&db, Op::Capture("v1")).await));
    assert_eq!(
        run(&db, Op::Release("v1")).await.unwrap(),
        Outcome::Settled(Settled::OtherWay(EntryKind::VerificationCapture))
    );
    assert_eq!(
        run(&db, Op::Capture("v1")).await.unwrap(),
        Outcome::Settled(Settled::Already)
    );
    assert_eq!(ledger::balances(&db, user).await.unwrap(), (700, 0));

    let too_much = run(&db, Op::Hold(user, 701, "v2")).await;
    assert!(
        matches!(too_much, Err(LedgerError::InsufficientFunds)),
        "{too_much:?}"
    );
    let unknown = run(&db, Op::Release("v2")).await;
    assert!(
        matches!(unknown, Err(LedgerError::HoldNotFound)),
        "{unknown:?}"
    );
    assert!(now(&run(&db, Op::Hold(user, 700, "v2")).await));
    assert_eq!(ledger::balances(&db, user).await.unwrap(), (0, 700));
    assert!(now(&run(&db, Op::Release("v2")).await));
    assert_eq!(ledger::balances(&db, user).await.unwrap(), (700, 0));

    for bad in [0, -5, 100_000_001] {
        let refused = run(&db, Op::Hold(user, bad, "v3")).await;
        assert!(
            matches!(refused, Err(LedgerError::InvalidAmount(_))),
            "{bad}: {refused:?}"
        );
    }
    let overdraw = run(&db, Op::Adjust(user, -701, "adj:1")).await;
    assert!(matches!(overdraw, Err(LedgerError::InsufficientFunds)));
    assert!(now(&run(&db, Op::Adjust(user, -200, "adj:2")).await));
    assert!(now(&run(&db, Op::Fee(user, 500, "fee:1")).await));
    assert_eq!(ledger::balances(&db, user).await.unwrap(), (0, 0));
    assert_books_balance(&db).await;
}

/// What the tasks expect each wallet to hold, from the operations that reported `Now`.
#[derive(Default)]
struct Expected {
    wallet: HashMap<Uuid, i64>,
    holds: HashMap<Uuid, i64>,
}

#[tokio::test]
async fn random_operations_from_many_tasks_keep_the_books_exact() {
    let app = spawn_app().await;
    let db = app.state.db.clone();
    let mut users = Vec::new();
    for _ in 0..4 {
        users.push(user_id(&app).await);
    }
    let expected = Arc::new(Mutex::new(Expected::default()));
    let mut tasks = Vec::new();
    for task in 0..12 {
        let db = db.clone();
        let users = users.clone();
        let expected = Arc::clone(&expected);
        tasks.push(tokio::spawn(async move {
            for step in 0..40 {
                let (user, op, amount, slot) = {
                    let mut rng = rand::rng();
                    (
                        users[rng.random_range(0..users.len())],
                        rng.random_range(0..6),
                        rng.random_range(1..400i64),
                        rng.random_range(0..8),
                    )
                };
                // Small pools of keys, so tasks often collide on the same business key.
                let reference = format!("v-{user}-{slot}");
                // A reference's hold amount is fixed, so whoever settles it knows the amount
                // without waiting for the holder's bookkeeping.
                let hold_amount = 37 * (slot as i64 + 1);
                let credit_key = format!("topup:{task}-{}", step % 10);
                let adjust_key = format!("adj:{task}-{step}");
                let signed = if step % 2 == 0 { amount } else { -amount };
                let outcome = match op {
                    0 => run(&db, Op::Credit(user, amount, &credit_key)).await,
                    1 | 2 => run(&db, Op::Hold(user, hold_amount, &reference)).await,
                    3 => run(&db, Op::Capture(&reference)).await,
                    4 => run(&db, Op::Release(&reference)).await,
                    _ => run(&db, Op::Adjust(user, signed, &adjust_key)).await,
                };
                if now(&outcome) {
                    let mut e = expected.lock().unwrap();
                    match op {
                        0 => *e.wallet.entry(user).or_default() += amount,
                        1 | 2 => {
                            *e.wallet.entry(user).or_default() -= hold_amount;
                            *e.holds.entry(user).or_default() += hold_amount;
                        }
                        3 | 4 => {
                            *e.holds.entry(user).or_default() -= hold_amount;
                            if op == 4 {
                                *e.wallet.entry(user).or_default() += hold_amount;
                            }
                        }
                        _ => *e.wallet.entry(user).or_default() += signed,
                    }
                }
                match outcome {
                    Ok(_)
                    | Err(LedgerError::InsufficientFunds)
                    | Err(LedgerError::HoldNotFound) => {}
                    Err(other) => panic!("unexpected ledger error: {other:?}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_books_balance(&db).await;
    let (wallets, holds_by_user) = {
        let e = expected.lock().unwrap();
        (e.wallet.clone(), e.holds.clone())
    };
    for user in &users {
        let (wallet, holds) = ledger::balances(&db, *user).await.unwrap();
        assert_eq!(
            wallet,
            wallets.get(user).copied().unwrap_or(0),
            "wallet of {user}"
        );
        assert_eq!(
            holds,
            holds_by_user.get(user).copied().unwrap_or(0),
            "holds of {user}"
        );
    }
}
