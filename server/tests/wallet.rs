//! WalletService over the ledger: balances and the transaction list a customer sees.
mod common;

use common::*;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::wallet_service_client::WalletServiceClient;
use namaskah_server::wallet::domain::EntryKind;
use namaskah_server::wallet::ledger;
use sea_orm::TransactionTrait;
use uuid::Uuid;

async fn account(app: &TestApp) -> (Uuid, String) {
    let (_, token) = app.signed_in().await;
    let me = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    (me.name.trim_start_matches("users/").parse().unwrap(), token)
}

#[tokio::test]
async fn balance_and_transactions_follow_the_ledger() {
    let app = spawn_app().await;
    let (user, token) = account(&app).await;
    let mut wallet = WalletServiceClient::new(app.channel.clone());

    let empty = wallet
        .get_balance(bearer(pb::GetBalanceRequest {}, &token))
        .await
        .expect("balance of a new wallet")
        .into_inner();
    assert_eq!(empty.balance.as_ref().unwrap().minor_units, 0);
    assert_eq!(empty.balance.unwrap().currency_code, "USD");
    assert!(empty.update_time.is_none());

    // Money moves the way the other rooms will move it.
    let db = &app.state.db;
    let txn = db.begin().await.unwrap();
    ledger::credit(&txn, user, 2_000, "topup:ref-1", "ref-1", "Top-up")
        .await
        .unwrap();
    txn.commit().await.unwrap();
    for (reference, amount) in [("v-1", 150), ("v-2", 250)] {
        let txn = db.begin().await.unwrap();
        ledger::hold(&txn, user, amount, reference, "WhatsApp, United Kingdom")
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
    let txn = db.begin().await.unwrap();
    ledger::capture(&txn, "v-1", "code arrived", None)
        .await
        .unwrap();
    ledger::release(&txn, "v-2", "expired").await.unwrap();
    ledger::adjust(&txn, user, -100, "adj:1", "duplicate top-up")
        .await
        .unwrap();
    ledger::debit(
        &txn,
        user,
        500,
        EntryKind::SubscriptionFee,
        "fee:1",
        "plans/pro",
        "Pro plan",
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();

    let balance = wallet
        .get_balance(bearer(pb::GetBalanceRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    // 2000 - 150 (captured) - 100 - 500 = 1250; the released 250 came back.
    assert_eq!(balance.balance.unwrap().minor_units, 1_250);
    assert_eq!(balance.held.unwrap().minor_units, 0);
    assert!(balance.update_time.is_some());

    let all = wallet
        .list_transactions(bearer(pb::ListTransactionsRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    let seen: Vec<(pb::TransactionKind, i64, i64)> = all
        .transactions
        .iter()
        .map(|t| {
            (
                t.kind(),
                t.amount.as_ref().unwrap().minor_units,
                t.balance_after.as_ref().unwrap().minor_units,
            )
        })
        .collect();
    use pb::TransactionKind as K;
    assert_eq!(
        seen,
        vec![
            (K::SubscriptionFee, -500, 1_250),
            (K::Adjustment, -100, 1_750),
            (K::VerificationRefund, 250, 1_850),
            (K::VerificationHold, -250, 1_600),
            (K::VerificationHold, -150, 1_850),
            (K::TopUp, 2_000, 2_000),
        ],
        "newest first; a capture does not touch the wallet"
    );
    assert_eq!(all.transactions[2].related_resource, "verifications/v-2");
    assert_eq!(all.transactions[5].related_resource, "topUps/ref-1");
    assert_eq!(all.transactions[1].reason, "duplicate top-up");

    // Filtered and paged.
    let mut names = Vec::new();
    let mut token_page = String::new();
    loop {
        let page = wallet
            .list_transactions(bearer(
                pb::ListTransactionsRequest {
                    page_size: 1,
                    page_token: token_page.clone(),
                    kind: K::VerificationHold as i32,
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.transactions.len() <= 1);
        names.extend(page.transactions.into_iter().map(|t| t.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token_page = page.next_page_token;
    }
    assert_eq!(
        names,
        vec![
            all.transactions[3].name.clone(),
            all.transactions[4].name.clone()
        ]
    );

    // Bad paging input.
    let status = wallet
        .list_transactions(bearer(
            pb::ListTransactionsRequest {
                page_size: -1,
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect_err("negative page size");
    assert_invalid(&status, "page_size");
    let status = wallet
        .list_transactions(bearer(
            pb::ListTransactionsRequest {
                page_token: names[0].clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect_err("garbage token");
    assert_invalid(&status, "page_token");

    // Another account sees an empty wallet.
    let (_, stranger) = account(&app).await;
    let theirs = wallet
        .list_transactions(bearer(pb::ListTransactionsRequest::default(), &stranger))
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.transactions.is_empty());
}
