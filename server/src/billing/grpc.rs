//! `SubscriptionService`: decode, call the domain, encode.
use std::sync::Arc;

use namaskah_proto::v1 as pb;
use namaskah_proto::v1::subscription_service_server::SubscriptionService;
use tonic::{Request, Response, Status};

use super::service::Billing;
use super::view;
use crate::authn::caller;
use crate::error::ApiError;

pub struct SubscriptionApi {
    billing: Arc<Billing>,
}

impl SubscriptionApi {
    pub fn new(billing: Arc<Billing>) -> Self {
        Self { billing }
    }
}

fn status(error: ApiError) -> Status {
    error.into_status()
}

#[tonic::async_trait]
impl SubscriptionService for SubscriptionApi {
    async fn list_plans(
        &self,
        _request: Request<pb::ListPlansRequest>,
    ) -> Result<Response<pb::ListPlansResponse>, Status> {
        Ok(Response::new(pb::ListPlansResponse {
            plans: self.billing.list_plans(),
        }))
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::GetSubscriptionResponse>, Status> {
        let principal = caller(&request)?;
        let subscription = self.billing.subscription(principal).await.map_err(status)?;
        Ok(Response::new(pb::GetSubscriptionResponse {
            subscription: Some(subscription),
        }))
    }

    async fn change_plan(
        &self,
        request: Request<pb::ChangePlanRequest>,
    ) -> Result<Response<pb::ChangePlanResponse>, Status> {
        let principal = caller(&request)?;
        let body = request.get_ref();
        let target = view::plan_from_tier(body.plan);
        if target.is_none() && body.plan != 0 {
            return Err(
                ApiError::invalid("plan", format!("{} is not a plan", body.plan)).into_status(),
            );
        }
        self.billing
            .change_plan(principal, target, &body.request_id)
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn cancel_subscription(
        &self,
        request: Request<pb::CancelSubscriptionRequest>,
    ) -> Result<Response<pb::CancelSubscriptionResponse>, Status> {
        let principal = caller(&request)?;
        let subscription = self.billing.cancel(principal).await.map_err(status)?;
        Ok(Response::new(pb::CancelSubscriptionResponse {
            subscription: Some(subscription),
        }))
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        let principal = caller(&request)?;
        let at = match &request.get_ref().period_time {
            None => None,
            Some(t) => Some(
                chrono::DateTime::from_timestamp(
                    t.seconds,
                    u32::try_from(t.nanos).unwrap_or(u32::MAX),
                )
                .ok_or_else(|| {
                    ApiError::invalid("period_time", "is not a valid time").into_status()
                })?,
            ),
        };
        let usage = self.billing.usage(principal, at).await.map_err(status)?;
        Ok(Response::new(pb::GetUsageResponse { usage: Some(usage) }))
    }

    async fn set_usage_alert(
        &self,
        request: Request<pb::SetUsageAlertRequest>,
    ) -> Result<Response<pb::SetUsageAlertResponse>, Status> {
        let principal = caller(&request)?;
        let alert = self
            .billing
            .set_usage_alert(principal, &request.get_ref().threshold_percents)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SetUsageAlertResponse {
            usage_alert: Some(alert),
        }))
    }
}
