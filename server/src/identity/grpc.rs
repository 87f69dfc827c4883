//! `AuthService` handlers: decode, call the identity room, encode. Nothing else.
use std::sync::Arc;

use namaskah_proto::v1 as pb;
use namaskah_proto::v1::auth_service_server::AuthService;
use tonic::{Request, Response, Status};

use super::entities::api_keys;
use super::service::{Identity, Tokens, UserProfile};
use crate::authn::{caller, optional_caller};
use crate::convert::timestamp;

pub struct AuthApi {
    identity: Arc<Identity>,
}

impl AuthApi {
    pub fn new(identity: Arc<Identity>) -> Self {
        Self { identity }
    }
}

pub(crate) fn user(profile: UserProfile) -> pb::User {
    pb::User {
        name: format!("users/{}", profile.id),
        email: profile.email,
        email_verified: profile.email_verified,
        two_factor_enabled: profile.two_factor_enabled,
        role: match profile.role.as_str() {
            "admin" => pb::UserRole::Admin,
            _ => pb::UserRole::Customer,
        } as i32,
        plan: match profile.plan.as_str() {
            "pro" => pb::PlanTier::Pro,
            "enterprise" => pb::PlanTier::Enterprise,
            _ => pb::PlanTier::Starter,
        } as i32,
        referral_code: profile.referral_code,
        create_time: Some(timestamp(profile.created_at)),
    }
}

fn tokens(tokens: Tokens) -> pb::TokenPair {
    pb::TokenPair {
        access_token: tokens.access_token,
        access_token_expire_time: Some(timestamp(tokens.access_expires_at)),
        refresh_token: tokens.refresh_token,
        refresh_token_expire_time: Some(timestamp(tokens.refresh_expires_at)),
        token_type: "Bearer".to_owned(),
    }
}

fn api_key(key: api_keys::Model) -> pb::ApiKey {
    pb::ApiKey {
        name: format!("apiKeys/{}", key.id),
        display_name: key.display_name,
        prefix: key.prefix,
        create_time: Some(timestamp(key.created_at)),
        last_use_time: key.last_used_at.map(timestamp),
        revoke_time: key.revoked_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        // The storefront of the host it was sent to: the account joins that tenant (a
        // suspended tenant's host was refused before this runs, so nothing is written).
        let tenant = crate::authn::storefront(&request);
        let r = request.into_inner();
        let profile = self
            .identity
            .register(&r.email, &r.password, &r.referral_code, tenant)
            .await?;
        Ok(Response::new(pb::RegisterResponse {
            user: Some(user(profile)),
        }))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::VerifyEmailResponse>, Status> {
        let profile = self.identity.verify_email(&request.get_ref().token).await?;
        Ok(Response::new(pb::VerifyEmailResponse {
            user: Some(user(profile)),
        }))
    }

    async fn resend_verification_email(
        &self,
        request: Request<pb::ResendVerificationEmailRequest>,
    ) -> Result<Response<pb::ResendVerificationEmailResponse>, Status> {
        self.identity
            .resend_verification_email(&request.get_ref().email)
            .await?;
        Ok(Response::new(pb::ResendVerificationEmailResponse {}))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let r = request.into_inner();
        let (pair, profile) = self
            .identity
            .login(&r.email, &r.password, &r.totp_code)
            .await?;
        Ok(Response::new(pb::LoginResponse {
            tokens: Some(tokens(pair)),
            user: Some(user(profile)),
        }))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        let pair = self
            .identity
            .refresh(&request.get_ref().refresh_token)
            .await?;
        Ok(Response::new(pb::RefreshTokenResponse {
            tokens: Some(tokens(pair)),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let principal = optional_caller(&request).cloned();
        let r = request.into_inner();
        self.identity
            .logout(principal.as_ref(), &r.refresh_token, r.all_sessions)
            .await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn get_me(
        &self,
        request: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let profile = self.identity.me(caller(&request)?).await?;
        Ok(Response::new(pb::GetMeResponse {
            user: Some(user(profile)),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let principal = caller(&request)?;
        let (key, secret) = self
            .identity
            .create_api_key(principal, &request.get_ref().display_name)
            .await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(api_key(key)),
            secret,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let principal = caller(&request)?;
        let r = request.get_ref();
        let (keys, next_page_token) = self
            .identity
            .list_api_keys(principal, r.page_size, &r.page_token, r.show_revoked)
            .await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.into_iter().map(api_key).collect(),
            next_page_token,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let principal = caller(&request)?;
        let key = self
            .identity
            .revoke_api_key(principal, &request.get_ref().name)
            .await?;
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(api_key(key)),
        }))
    }

    async fn setup_two_factor(
        &self,
        request: Request<pb::SetupTwoFactorRequest>,
    ) -> Result<Response<pb::SetupTwoFactorResponse>, Status> {
        let setup = self.identity.setup_two_factor(caller(&request)?).await?;
        Ok(Response::new(pb::SetupTwoFactorResponse {
            secret: setup.secret,
            otpauth_uri: setup.otpauth_uri,
            qr_code_png: setup.qr_code_png,
            backup_codes: setup.backup_codes,
        }))
    }

    async fn confirm_two_factor(
        &self,
        request: Request<pb::ConfirmTwoFactorRequest>,
    ) -> Result<Response<pb::ConfirmTwoFactorResponse>, Status> {
        let principal = caller(&request)?;
        let profile = self
            .identity
            .confirm_two_factor(principal, &request.get_ref().code)
            .await?;
        Ok(Response::new(pb::ConfirmTwoFactorResponse {
            user: Some(user(profile)),
        }))
    }

    async fn disable_two_factor(
        &self,
        request: Request<pb::DisableTwoFactorRequest>,
    ) -> Result<Response<pb::DisableTwoFactorResponse>, Status> {
        let principal = caller(&request)?;
        let r = request.get_ref();
        let profile = self
            .identity
            .disable_two_factor(principal, &r.password, &r.code)
            .await?;
        Ok(Response::new(pb::DisableTwoFactorResponse {
            user: Some(user(profile)),
        }))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::RequestPasswordResetResponse>, Status> {
        self.identity
            .request_password_reset(&request.get_ref().email)
            .await?;
        Ok(Response::new(pb::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let r = request.get_ref();
        self.identity
            .reset_password(&r.token, &r.new_password)
            .await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }
}
