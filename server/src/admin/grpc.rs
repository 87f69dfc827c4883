//! `AdminService` handlers: admit the caller, decode, call the room, encode.
use std::net::IpAddr;
use std::sync::Arc;

use namaskah_proto::v1 as pb;
use namaskah_proto::v1::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

use super::domain::Outcome;
use super::repo::AuditRow;
use super::service::{self, Account, Actor, Admin, Caller, UserQuery};
use crate::authn::caller;
use crate::convert::timestamp;
use crate::error::ApiError;
use crate::identity::domain::{AccountStatus, Plan};
use crate::wallet::grpc::{money, transaction};

pub struct AdminApi {
    admin: Arc<Admin>,
    trusted_proxies: Vec<IpAddr>,
}

impl AdminApi {
    pub fn new(admin: Arc<Admin>, trusted_proxies: Vec<IpAddr>) -> Self {
        Self {
            admin,
            trusted_proxies,
        }
    }

    /// Admits the caller of `method` on `target` (auditing a refusal).
    async fn actor<T>(
        &self,
        request: &Request<T>,
        method: &'static str,
        target: &str,
    ) -> Result<Actor, Status> {
        admit(&self.admin, &self.trusted_proxies, request, method, target).await
    }
}

/// Admits the caller of `method` on `target` if it is an administrator with a TOTP-verified
/// session (auditing a refusal): every administrators' RPC, of any service, comes here.
pub async fn admit<T>(
    admin: &Admin,
    trusted_proxies: &[IpAddr],
    request: &Request<T>,
    method: &'static str,
    target: &str,
) -> Result<Actor, Status> {
    let principal = caller(request)?.clone();
    let headers = request.metadata().clone().into_headers();
    let peer = request.remote_addr().map(|a| a.ip());
    let client_address = crate::billing::limits::client_address(peer, &headers, trusted_proxies)
        .map(|ip| ip.to_string());
    Ok(admin
        .admit(
            &Caller {
                principal,
                client_address,
            },
            method,
            target,
        )
        .await?)
}

fn user_account(account: Account) -> pb::UserAccount {
    let suspended = account.profile.status == AccountStatus::Suspended.as_str();
    pb::UserAccount {
        status: if suspended {
            pb::UserStatus::Suspended
        } else {
            pb::UserStatus::Active
        } as i32,
        tenant: account.tenant.clone(),
        balance: money(account.balance),
        held: money(account.held),
        verification_count: i64::try_from(account.verification_count).unwrap_or(i64::MAX),
        last_active_time: account.last_active.map(timestamp),
        suspend_time: account
            .suspension
            .as_ref()
            .filter(|_| suspended)
            .map(|s| timestamp(s.suspended_at)),
        suspend_reason: account
            .suspension
            .filter(|_| suspended)
            .map(|s| s.reason)
            .unwrap_or_default(),
        user: Some(crate::identity::grpc::user(account.profile)),
    }
}

fn json_struct(value: Option<serde_json::Value>) -> Option<prost_types::Struct> {
    match value? {
        serde_json::Value::Object(map) => Some(prost_types::Struct {
            fields: map.into_iter().map(|(k, v)| (k, json_value(v))).collect(),
        }),
        _ => None,
    }
}

fn json_value(value: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map.into_iter().map(|(k, v)| (k, json_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn audit_entry(row: AuditRow) -> pb::AuditLogEntry {
    pb::AuditLogEntry {
        name: format!("auditLogEntries/{}", row.id),
        actor: row
            .actor_id
            .map(|id| format!("users/{id}"))
            .unwrap_or_default(),
        actor_email: row.actor_email,
        method: row.method,
        target: row.target,
        outcome: match Outcome::parse(&row.outcome) {
            Some(Outcome::Succeeded) => pb::AuditOutcome::Succeeded,
            Some(Outcome::Denied) => pb::AuditOutcome::Denied,
            Some(Outcome::Failed) => pb::AuditOutcome::Failed,
            None => pb::AuditOutcome::Unspecified,
        } as i32,
        reason: row.reason,
        before: json_struct(row.before),
        after: json_struct(row.after),
        request_id: row.request_id.unwrap_or_default(),
        client_address: row.client_address.unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let actor = self.actor(&request, service::LIST_USERS, "users").await?;
        let r = request.get_ref();
        let plan = match pb::PlanTier::try_from(r.plan) {
            Ok(pb::PlanTier::Unspecified) => None,
            Ok(pb::PlanTier::Starter) => Some(Plan::Starter.as_str()),
            Ok(pb::PlanTier::Pro) => Some(Plan::Pro.as_str()),
            Ok(pb::PlanTier::Enterprise) => Some(Plan::Enterprise.as_str()),
            Err(_) => return Err(ApiError::invalid("plan", "is not a PlanTier").into()),
        };
        let status = match pb::UserStatus::try_from(r.status) {
            Ok(pb::UserStatus::Unspecified) => None,
            Ok(pb::UserStatus::Active) => Some(AccountStatus::Active),
            Ok(pb::UserStatus::Suspended) => Some(AccountStatus::Suspended),
            Err(_) => return Err(ApiError::invalid("status", "is not a UserStatus").into()),
        };
        let (accounts, next_page_token) = self
            .admin
            .list_users(
                &actor,
                UserQuery {
                    email_query: &r.email_query,
                    plan,
                    status,
                    tenant: &r.tenant,
                },
                &r.page_token,
                r.page_size,
            )
            .await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: accounts.into_iter().map(user_account).collect(),
            next_page_token,
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let name = request.get_ref().name.clone();
        let actor = self.actor(&request, service::GET_USER, &name).await?;
        let detail = self.admin.get_user(&actor, &name).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user_account(detail.account)),
            recent_verifications: detail.verifications.iter().map(|v| v.to_proto()).collect(),
            recent_transactions: detail.transactions.into_iter().map(transaction).collect(),
            recent_audit_log_entries: detail.audit.into_iter().map(audit_entry).collect(),
        }))
    }

    async fn adjust_balance(
        &self,
        request: Request<pb::AdjustBalanceRequest>,
    ) -> Result<Response<pb::AdjustBalanceResponse>, Status> {
        let name = request.get_ref().name.clone();
        let actor = self.actor(&request, service::ADJUST_BALANCE, &name).await?;
        Ok(Response::new(
            self.admin.adjust_balance(&actor, request.get_ref()).await?,
        ))
    }

    async fn suspend_user(
        &self,
        request: Request<pb::SuspendUserRequest>,
    ) -> Result<Response<pb::SuspendUserResponse>, Status> {
        let r = request.get_ref();
        let actor = self.actor(&request, service::SUSPEND_USER, &r.name).await?;
        let account = self
            .admin
            .set_suspended(&actor, &r.name, &r.reason, true)
            .await?;
        Ok(Response::new(pb::SuspendUserResponse {
            user: Some(user_account(account)),
        }))
    }

    async fn reactivate_user(
        &self,
        request: Request<pb::ReactivateUserRequest>,
    ) -> Result<Response<pb::ReactivateUserResponse>, Status> {
        let r = request.get_ref();
        let actor = self
            .actor(&request, service::REACTIVATE_USER, &r.name)
            .await?;
        let account = self
            .admin
            .set_suspended(&actor, &r.name, &r.reason, false)
            .await?;
        Ok(Response::new(pb::ReactivateUserResponse {
            user: Some(user_account(account)),
        }))
    }

    async fn set_service_price(
        &self,
        request: Request<pb::SetServicePriceRequest>,
    ) -> Result<Response<pb::SetServicePriceResponse>, Status> {
        let name = request.get_ref().name.clone();
        let actor = self
            .actor(&request, service::SET_SERVICE_PRICE, &name)
            .await?;
        let (change, at) = self
            .admin
            .set_service_price(&actor, request.get_ref())
            .await?;
        let withdrawn = request.get_ref().withdrawn;
        Ok(Response::new(pb::SetServicePriceResponse {
            name: format!("services/{}/prices/{}", change.service, change.country),
            base_price: money(change.base_price),
            previous_base_price: change.previous_base_price.and_then(money),
            withdrawn,
            update_time: Some(timestamp(at)),
        }))
    }

    async fn refund_verification(
        &self,
        request: Request<pb::RefundVerificationRequest>,
    ) -> Result<Response<pb::RefundVerificationResponse>, Status> {
        let name = request.get_ref().name.clone();
        let actor = self
            .actor(&request, service::REFUND_VERIFICATION, &name)
            .await?;
        Ok(Response::new(
            self.admin
                .refund_verification(&actor, request.get_ref())
                .await?,
        ))
    }

    async fn list_audit_log_entries(
        &self,
        request: Request<pb::ListAuditLogEntriesRequest>,
    ) -> Result<Response<pb::ListAuditLogEntriesResponse>, Status> {
        let actor = self
            .actor(&request, service::LIST_AUDIT_LOG_ENTRIES, "auditLogEntries")
            .await?;
        let (rows, next_page_token) = self.admin.audit_log(&actor, request.get_ref()).await?;
        Ok(Response::new(pb::ListAuditLogEntriesResponse {
            audit_log_entries: rows.into_iter().map(audit_entry).collect(),
            next_page_token,
        }))
    }
}
