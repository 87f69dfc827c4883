//! The ledger scenario end to end against a fresh SQLite database: the entries it reports
//! are the entries the database holds, insufficient funds are not errors, and the books
//! check catches a broken book.

use std::future::pending;
use std::time::Duration;

use namaskah_bench::ledger::{self, LedgerOptions, LedgerRun};
use namaskah_bench::report::EndReason;
use namaskah_bench::runner::{Bound, LoadPlan};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

fn plan(concurrency: usize, bound: Bound) -> LoadPlan {
    LoadPlan {
        connections: 1,
        concurrency,
        bound,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(20),
    }
}

fn options(
    dir: &tempfile::TempDir,
    wallets: u32,
    wallet_funds: i64,
    max_hold: i64,
) -> LedgerOptions {
    LedgerOptions {
        database_url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("ledger.db").display()
        ),
        wallets,
        wallet_funds,
        max_hold,
    }
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

async fn open(options: &LedgerOptions) -> DatabaseConnection {
    Database::connect(options.database_url.as_str())
        .await
        .unwrap()
}

/// What the driver counted matches itself: each cycle is a hold, each successful hold is
/// followed by a release, and every operation is an entry, a refusal or an error.
fn assert_consistent(run: &LedgerRun) {
    let stats = &run.stats;
    assert_eq!(stats.release.count(), stats.hold.ok_count());
    assert_eq!(
        stats.entries(),
        stats.hold.ok_count() + stats.release.ok_count()
    );
    assert_eq!(
        stats.operations(),
        stats.entries() + stats.insufficient_funds + stats.errors()
    );
    assert!(run.books.balanced(), "{:?}", run.books);
    assert_eq!(run.books.counted_right(), Some(true), "{:?}", run.books);
    assert!(run.books.ok());
}

#[tokio::test]
async fn every_cycle_writes_a_hold_and_a_release_and_the_books_balance() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(&dir, 5, 10_000, 50);
    let run = ledger::run(&options, &plan(3, Bound::Total(40)), pending())
        .await
        .unwrap();

    assert_eq!(run.end_reason, EndReason::Normal);
    assert_eq!(run.stats.hold.count(), 40);
    assert_eq!(
        run.stats.hold.ok_count(),
        40,
        "{:?}",
        run.stats.hold.errors()
    );
    assert_eq!(
        run.stats.release.ok_count(),
        40,
        "{:?}",
        run.stats.release.errors()
    );
    assert_eq!(run.stats.entries(), 80);
    assert_eq!(run.stats.insufficient_funds, 0);
    assert_eq!(run.stats.errors(), 0);
    assert_eq!(run.books.run_entries, 80);
    assert_eq!(run.books.driver_entries, Some(80));
    assert!(run.entries_per_second() > 0.0);
    assert_consistent(&run);

    // The database, read here independently of the driver.
    let db = open(&options).await;
    let count = |kind: &str| {
        format!(
            "SELECT COUNT(*) FROM journal_entries WHERE kind = '{kind}' AND reference LIKE 'load-{}-%'",
            run.tag
        )
    };
    assert_eq!(scalar(&db, &count("verification_hold")).await, 40);
    assert_eq!(scalar(&db, &count("verification_refund")).await, 40);
    assert_eq!(scalar(&db, &count("top_up")).await, 5);
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM ledger_accounts WHERE kind = 'wallet'"
        )
        .await,
        5
    );
    // Every hold was released: each wallet is back to its funding, nothing is held.
    assert_eq!(
        scalar(
            &db,
            "SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE kind = 'wallet'"
        )
        .await,
        50_000
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE kind = 'holds'"
        )
        .await,
        0
    );

    // The report says the same.
    let description = namaskah_bench::report::RunDescription {
        name: None,
        scenario: "ledger".to_owned(),
        call: "namaskah_server::wallet::ledger::{hold,release}".to_owned(),
        host: options.database_url.clone(),
        connections: 1,
        concurrency: 3,
        unit: "cycles",
        total_requests: Some(40),
        duration: None,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(10),
        data: options.data_json(),
        metadata: Default::default(),
        cpus: 1,
    };
    let json = run
        .json(&description, "2026-11-27T00:00:00Z".to_owned())
        .unwrap();
    assert_eq!(json["count"], 80);
    assert_eq!(json["statusCodeDistribution"]["OK"], 80);
    assert_eq!(json["operations"]["hold"]["count"], 40);
    assert_eq!(json["operations"]["release"]["count"], 40);
    assert_eq!(
        json["operations"]["hold"]["options"]["call"],
        "namaskah_server::wallet::ledger::hold"
    );
    assert_eq!(json["ledger"]["entries"], 80);
    assert_eq!(json["ledger"]["insufficientFunds"], 0);
    assert_eq!(json["ledger"]["errors"], 0);
    assert!(json["ledger"]["entriesPerSecond"].as_f64().unwrap() > 0.0);
    assert_eq!(json["books"]["balanced"], true);
    assert_eq!(json["books"]["countedRight"], true);
    assert_eq!(json["books"]["runEntries"], 80);
    assert_eq!(json["latencyDistribution"].as_array().unwrap().len(), 7);
    assert_eq!(json["options"]["total"], 40);
    assert_eq!(json["tags"]["unit"], "cycles");
    let text = run.render_text(&description);
    for needle in [
        "Entries:\t80 written (40 holds, 40 releases)",
        "Insufficient funds:\t0 holds refused",
        "Errors:\t0",
        "Books: balanced",
        "1 connections × 3 in flight, 40 cycles",
        "[OK]\t80 responses",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[tokio::test]
async fn holds_a_wallet_cannot_afford_are_refused_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    // One cent per wallet and holds of 1–3 cents: a hold of 1 goes through and is released,
    // a hold of 2 or 3 is refused.
    let options = options(&dir, 2, 1, 3);
    let run = ledger::run(&options, &plan(1, Bound::Total(60)), pending())
        .await
        .unwrap();

    assert_eq!(run.stats.hold.count(), 60);
    assert!(run.stats.insufficient_funds > 0);
    assert_eq!(
        run.stats.hold.ok_count() + run.stats.insufficient_funds,
        60,
        "{:?}",
        run.stats.hold.errors()
    );
    assert_eq!(
        run.stats.hold.status_codes().get("FailedPrecondition"),
        Some(&run.stats.insufficient_funds)
    );
    assert_eq!(run.stats.errors(), 0);
    assert_eq!(run.stats.entries(), 2 * run.stats.hold.ok_count());
    assert_eq!(run.books.run_entries as u64, run.stats.entries());
    assert_consistent(&run);
}

#[tokio::test]
async fn warm_up_entries_are_in_the_database_but_not_in_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(&dir, 3, 10_000, 50);
    let mut plan = plan(2, Bound::Duration(Duration::from_millis(300)));
    plan.warmup = Duration::from_millis(200);
    let run = ledger::run(&options, &plan, pending()).await.unwrap();
    assert_eq!(run.end_reason, EndReason::Timeout);
    assert!(run.stats.warmup_entries > 0);
    assert!(run.stats.entries() > 0);
    assert_eq!(
        run.books.run_entries as u64,
        run.stats.entries() + run.stats.warmup_entries
    );
    assert_consistent(&run);
}

#[tokio::test]
async fn the_books_check_catches_a_broken_book() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(&dir, 2, 10_000, 50);
    let run = ledger::run(&options, &plan(1, Bound::Total(5)), pending())
        .await
        .unwrap();
    assert!(run.books.ok());
    let pattern = format!("load-{}-h%", run.tag);
    let db = open(&options).await;

    // A wallet's kept balance off its lines.
    db.execute_unprepared(
        "UPDATE ledger_accounts SET balance = balance + 1 \
         WHERE id = (SELECT id FROM ledger_accounts WHERE kind = 'wallet' LIMIT 1)",
    )
    .await
    .unwrap();
    let books = ledger::check_books(&db, &pattern, Some(10)).await.unwrap();
    assert_eq!(books.drifted_balances, 1);
    assert!(!books.balanced());

    // A line changed: its entry no longer sums to zero, nor do all lines.
    db.execute_unprepared(
        "UPDATE journal_lines SET amount = amount + 1 \
         WHERE id = (SELECT id FROM journal_lines ORDER BY id LIMIT 1)",
    )
    .await
    .unwrap();
    let books = ledger::check_books(&db, &pattern, Some(10)).await.unwrap();
    assert_eq!(books.unbalanced_entries, 1);
    assert_eq!(books.sum_of_lines, 1);
    assert!(!books.ok());

    // An entry the driver did not count.
    let books = ledger::check_books(&db, &pattern, Some(9)).await.unwrap();
    assert_eq!(books.counted_right(), Some(false));
}
