//! sea-orm entities of the verification tables.

pub mod verifications {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "verifications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        pub request_id: String,
        pub request_fingerprint: String,
        pub service: String,
        pub country: String,
        pub price: i64,
        pub currency: String,
        pub status: String,
        pub charge_state: String,
        pub provider: Option<String>,
        pub provider_ref: Option<String>,
        pub phone_number: Option<String>,
        pub code: Option<String>,
        pub failure_reason: Option<String>,
        pub refund_reason: Option<String>,
        pub refund_transaction_id: Option<Uuid>,
        pub refunded_at: Option<DateTimeUtc>,
        pub refund_note: Option<String>,
        pub last_sequence: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub expires_at: Option<DateTimeUtc>,
        pub ended_at: Option<DateTimeUtc>,
        pub next_poll_at: Option<DateTimeUtc>,
        pub poll_count: i32,
        pub cleanup: Option<String>,
        pub cleanup_at: Option<DateTimeUtc>,
        pub cleanup_attempts: i32,
        /// The tenant whose customer bought it; `None`: the platform's own.
        pub tenant_id: Option<Uuid>,
        /// The tenant's share of `price`, booked to its margin account on capture.
        pub tenant_margin: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod verification_messages {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "verification_messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub verification_id: Uuid,
        pub dedup_key: String,
        pub sender: String,
        pub text: String,
        pub code: Option<String>,
        pub received_at: DateTimeUtc,
        pub after_refund: bool,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod verification_events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "verification_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub verification_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub sequence: i64,
        pub user_id: Uuid,
        pub kind: String,
        pub payload: Vec<u8>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
