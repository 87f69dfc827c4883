//! Verifications as callers see them (the Protobuf messages), built from stored rows. Events
//! are stored in this form too, so a replay sends exactly what the live stream sent.
use namaskah_proto::v1 as pb;

use super::domain::{Charge, FailureReason, RefundReason, Status};
use super::entities::{verification_messages, verifications};
use crate::convert::timestamp;

fn status(row: &verifications::Model) -> pb::VerificationStatus {
    match Status::parse(&row.status) {
        Some(Status::Pending) => pb::VerificationStatus::Pending,
        Some(Status::Active) => pb::VerificationStatus::Active,
        Some(Status::Completed) => pb::VerificationStatus::Completed,
        Some(Status::Cancelled) => pb::VerificationStatus::Cancelled,
        Some(Status::Expired) => pb::VerificationStatus::Expired,
        Some(Status::Failed) => pb::VerificationStatus::Failed,
        None => pb::VerificationStatus::Unspecified,
    }
}

pub fn status_from_proto(status: pb::VerificationStatus) -> Option<Status> {
    match status {
        pb::VerificationStatus::Unspecified => None,
        pb::VerificationStatus::Pending => Some(Status::Pending),
        pb::VerificationStatus::Active => Some(Status::Active),
        pb::VerificationStatus::Completed => Some(Status::Completed),
        pb::VerificationStatus::Cancelled => Some(Status::Cancelled),
        pb::VerificationStatus::Expired => Some(Status::Expired),
        pb::VerificationStatus::Failed => Some(Status::Failed),
    }
}

fn money(minor_units: i64, currency: &str) -> pb::Money {
    pb::Money {
        currency_code: currency.to_owned(),
        minor_units,
    }
}

pub fn message(verification: uuid::Uuid, m: &verification_messages::Model) -> pb::SmsMessage {
    pb::SmsMessage {
        name: format!("verifications/{verification}/messages/{}", m.id),
        sender: m.sender.clone(),
        text: m.text.clone(),
        code: m.code.clone().unwrap_or_default(),
        receive_time: Some(timestamp(m.received_at)),
        after_refund: m.after_refund,
    }
}

/// The verification with its messages (oldest first).
pub fn verification(
    row: &verifications::Model,
    messages: &[verification_messages::Model],
) -> pb::Verification {
    let charge = match Charge::parse(&row.charge_state) {
        Some(Charge::Held) => pb::ChargeState::Held,
        Some(Charge::Captured) => pb::ChargeState::Captured,
        Some(Charge::Refunded) => pb::ChargeState::Refunded,
        None => pb::ChargeState::Unspecified,
    };
    let refund = match (row.refund_reason.as_deref(), row.refunded_at) {
        (Some(reason), Some(at)) => Some(pb::VerificationRefund {
            amount: Some(money(row.price, &row.currency)),
            reason: match RefundReason::parse(reason) {
                Some(RefundReason::Cancelled) => pb::RefundReason::Cancelled,
                Some(RefundReason::Expired) => pb::RefundReason::Expired,
                Some(RefundReason::Failed) => pb::RefundReason::Failed,
                Some(RefundReason::Manual) => pb::RefundReason::Manual,
                None => pb::RefundReason::Unspecified,
            } as i32,
            refund_time: Some(timestamp(at)),
            transaction: row
                .refund_transaction_id
                .map(|id| format!("transactions/{id}"))
                .unwrap_or_default(),
            note: row.refund_note.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    pb::Verification {
        name: super::domain::name(row.id),
        service: format!("services/{}", row.service),
        country: format!("countries/{}", row.country),
        status: status(row) as i32,
        phone_number: row.phone_number.clone().unwrap_or_default(),
        price: Some(money(row.price, &row.currency)),
        charge_state: charge as i32,
        code: row.code.clone().unwrap_or_default(),
        messages: messages.iter().map(|m| message(row.id, m)).collect(),
        refund,
        failure_reason: row
            .failure_reason
            .as_deref()
            .and_then(FailureReason::parse)
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        expire_time: row.expires_at.map(timestamp),
        end_time: row.ended_at.map(timestamp),
        last_sequence: row.last_sequence,
        request_id: row.request_id.clone(),
    }
}
