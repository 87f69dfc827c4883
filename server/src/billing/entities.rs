//! sea-orm entities of the billing tables (see the `migration` crate for the schema).

pub mod subscriptions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "subscriptions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub plan: String,
        pub anchor_at: DateTimeUtc,
        pub period_start: DateTimeUtc,
        pub period_end: DateTimeUtc,
        pub scheduled_plan: Option<String>,
        pub cancel_at_period_end: bool,
        pub plan_started_at: DateTimeUtc,
        pub version: i64,
        pub lease_until: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod subscription_changes {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "subscription_changes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        pub actor: String,
        pub kind: String,
        pub from_plan: String,
        pub to_plan: String,
        pub charged: i64,
        pub effective_at: DateTimeUtc,
        pub request_id: Option<String>,
        pub request_fingerprint: Option<String>,
        pub response: Option<Vec<u8>>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod billing_periods {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "billing_periods")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub period_start: DateTimeUtc,
        pub period_end: DateTimeUtc,
        pub plan: String,
        pub included_api_calls: i64,
        pub overage_per_thousand: i64,
        pub api_calls: i64,
        pub calls_updated_at: Option<DateTimeUtc>,
        pub close_status: String,
        pub overage_calls: Option<i64>,
        pub overage_charge: Option<i64>,
        pub overage_entry_id: Option<Uuid>,
        pub closed_at: Option<DateTimeUtc>,
        pub lease_until: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod usage_alert_settings {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "usage_alert_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub thresholds: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod usage_alerts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "usage_alerts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub period_start: DateTimeUtc,
        #[sea_orm(primary_key, auto_increment = false)]
        pub threshold: i32,
        pub api_calls: i64,
        pub included_api_calls: i64,
        pub crossed_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
