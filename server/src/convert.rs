//! Conversions between domain values and Protobuf well-known types.
use chrono::{DateTime, Utc};

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// An amount in the wallet's currency (US cents).
pub fn usd(minor_units: i64) -> namaskah_proto::v1::Money {
    namaskah_proto::v1::Money {
        currency_code: crate::wallet::domain::CURRENCY.to_owned(),
        minor_units,
    }
}
