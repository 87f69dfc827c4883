//! `WalletService` handlers: decode, call the ledger or the payments room, encode.
use std::sync::Arc;

use namaskah_proto::v1 as pb;
use namaskah_proto::v1::wallet_service_server::WalletService;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use super::domain::{CURRENCY, EntryKind};
use super::ledger::{self, WalletMovement};
use crate::authn::caller;
use crate::convert::timestamp;
use crate::error::ApiError;
use crate::payments::grpc::top_up;
use crate::payments::service::{NewTopUp, Payments};

pub struct WalletApi {
    db: DatabaseConnection,
    payments: Arc<Payments>,
}

impl WalletApi {
    pub fn new(db: DatabaseConnection, payments: Arc<Payments>) -> Self {
        Self { db, payments }
    }
}

pub(crate) fn money(minor_units: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: CURRENCY.to_owned(),
        minor_units,
    })
}

fn transaction_kind(kind: EntryKind) -> pb::TransactionKind {
    match kind {
        EntryKind::TopUp => pb::TransactionKind::TopUp,
        EntryKind::VerificationHold => pb::TransactionKind::VerificationHold,
        EntryKind::VerificationRefund => pb::TransactionKind::VerificationRefund,
        EntryKind::SubscriptionFee => pb::TransactionKind::SubscriptionFee,
        EntryKind::OverageCharge => pb::TransactionKind::OverageCharge,
        EntryKind::Adjustment => pb::TransactionKind::Adjustment,
        // A capture moves held money to revenue: the wallet has no line for it.
        EntryKind::VerificationCapture => pb::TransactionKind::Unspecified,
    }
}

fn entry_kind(kind: pb::TransactionKind) -> Option<EntryKind> {
    match kind {
        pb::TransactionKind::Unspecified => None,
        pb::TransactionKind::TopUp => Some(EntryKind::TopUp),
        pb::TransactionKind::VerificationHold => Some(EntryKind::VerificationHold),
        pb::TransactionKind::VerificationRefund => Some(EntryKind::VerificationRefund),
        pb::TransactionKind::SubscriptionFee => Some(EntryKind::SubscriptionFee),
        pb::TransactionKind::OverageCharge => Some(EntryKind::OverageCharge),
        pb::TransactionKind::Adjustment => Some(EntryKind::Adjustment),
    }
}

pub(crate) fn transaction(movement: WalletMovement) -> pb::Transaction {
    let WalletMovement { line, entry } = movement;
    let kind = EntryKind::parse(&entry.kind);
    let (related_resource, description, reason) = match kind {
        Some(EntryKind::VerificationHold | EntryKind::VerificationRefund) => (
            format!("verifications/{}", entry.reference),
            entry.memo,
            String::new(),
        ),
        Some(EntryKind::TopUp) => (
            format!("topUps/{}", entry.reference),
            entry.memo,
            String::new(),
        ),
        Some(EntryKind::Adjustment) => (String::new(), "Adjustment".to_owned(), entry.memo),
        _ => (entry.reference, entry.memo, String::new()),
    };
    pb::Transaction {
        name: format!("transactions/{}", line.id),
        kind: kind.map_or(pb::TransactionKind::Unspecified, transaction_kind) as i32,
        amount: money(line.amount),
        balance_after: line.balance_after.and_then(money),
        description,
        related_resource,
        reason,
        create_time: Some(timestamp(line.created_at)),
    }
}

#[tonic::async_trait]
impl WalletService for WalletApi {
    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::GetBalanceResponse>, Status> {
        let user = caller(&request)?.user_id;
        let summary = ledger::wallet_summary(&self.db, user)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::GetBalanceResponse {
            balance: money(summary.available),
            held: money(summary.held),
            update_time: summary.updated_at.map(timestamp),
        }))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let user = caller(&request)?.user_id;
        let r = request.get_ref();
        let limit = crate::paging::page_size(r.page_size)?;
        let kind = pb::TransactionKind::try_from(r.kind)
            .map_err(|_| ApiError::invalid("kind", "is not a TransactionKind"))?;
        // The filter is part of the token's scope: a token from another filter is refused.
        let scope = format!("transactions-{}", kind.as_str_name());
        let before = crate::paging::decode(&r.page_token, &scope)?;
        let mut movements =
            ledger::wallet_movements(&self.db, user, entry_kind(kind), before, limit)
                .await
                .map_err(ApiError::from)?;
        let next_page_token = if movements.len() as u64 > limit {
            movements.truncate(limit as usize);
            movements
                .last()
                .map(|m| crate::paging::encode(m.line.id, &scope))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListTransactionsResponse {
            transactions: movements.into_iter().map(transaction).collect(),
            next_page_token,
        }))
    }

    async fn create_top_up(
        &self,
        request: Request<pb::CreateTopUpRequest>,
    ) -> Result<Response<pb::CreateTopUpResponse>, Status> {
        let principal = caller(&request)?.clone();
        let r = request.into_inner();
        let Some(amount) = r.amount else {
            return Err(ApiError::invalid("amount", "is required").into());
        };
        let view = self
            .payments
            .create_top_up(
                &principal,
                NewTopUp {
                    amount: amount.minor_units,
                    currency: &amount.currency_code,
                    request_id: &r.request_id,
                    callback_url: &r.callback_url,
                },
            )
            .await?;
        Ok(Response::new(pb::CreateTopUpResponse {
            top_up: Some(top_up(view)),
        }))
    }

    async fn verify_top_up(
        &self,
        request: Request<pb::VerifyTopUpRequest>,
    ) -> Result<Response<pb::VerifyTopUpResponse>, Status> {
        let principal = caller(&request)?.clone();
        let (view, balance) = self
            .payments
            .verify_top_up(&principal, &request.get_ref().reference)
            .await?;
        Ok(Response::new(pb::VerifyTopUpResponse {
            top_up: Some(top_up(view)),
            balance: money(balance),
        }))
    }
}
