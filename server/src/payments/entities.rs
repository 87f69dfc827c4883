//! sea-orm entities of the payment tables.

pub mod payment_logs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payment_logs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub reference: String,
        pub user_id: Uuid,
        pub request_id: String,
        pub request_fingerprint: String,
        pub gateway: String,
        pub status: String,
        pub amount: i64,
        pub currency: String,
        pub charge_amount: i64,
        pub charge_currency: String,
        pub credited_amount: Option<i64>,
        pub failure_reason: Option<String>,
        pub checkout_url: String,
        pub callback_url: String,
        pub entry_id: Option<Uuid>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub completed_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod payment_events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payment_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub payment_id: Uuid,
        pub from_status: Option<String>,
        pub to_status: String,
        pub source: String,
        pub detail: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sandbox_payments {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sandbox_payments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub reference: String,
        pub email: String,
        pub amount: i64,
        pub currency: String,
        pub status: String,
        pub paid_amount: Option<i64>,
        pub paid_currency: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
