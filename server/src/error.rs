//! The application's errors and their one mapping to `tonic::Status`.
//!
//! Domain rooms return [`ApiError`]; storage returns [`StoreError`], which converts into
//! `ApiError`. Only [`ApiError::into_status`] builds a `Status`, always with a
//! `google.rpc.ErrorInfo` (domain `namaskah.sms`) and, where it helps, `BadRequest` field
//! violations or `RetryInfo`.
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every error Namaskah returns.
pub const ERROR_DOMAIN: &str = "namaskah.sms";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Collects field violations while validating a request.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// `Ok` when nothing was wrong, else `INVALID_ARGUMENT` listing every problem.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidArgument(self.0))
        }
    }
}

/// What went wrong, in the product's terms. `reason`s are UPPER_SNAKE_CASE and documented in
/// the proto comments.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has invalid fields: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// One invalid field with a reason of its own (for example `TOKEN_EXPIRED`).
    #[error("invalid {field}: {description}")]
    InvalidField {
        reason: &'static str,
        field: &'static str,
        description: String,
    },
    #[error("{message}")]
    Unauthenticated {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    PermissionDenied {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    NotFound {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    ResourceExhausted {
        reason: &'static str,
        message: String,
        retry_after: Duration,
    },
    #[error("{capability} is not available yet")]
    Unimplemented { capability: String },
    /// A feature switched off by configuration (`UNIMPLEMENTED` with its own reason).
    #[error("{message}")]
    Disabled {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    Unavailable {
        reason: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// A value past the end of a range (`OUT_OF_RANGE`), with the field named.
    #[error("invalid {field}: {description}")]
    OutOfRange {
        reason: &'static str,
        field: &'static str,
        description: String,
    },
    /// The call conflicts with another still running (`ABORTED`): retry after a while.
    #[error("{message}")]
    Aborted {
        reason: &'static str,
        message: String,
        retry_after: Duration,
    },
    /// Any of the above with `ErrorInfo` metadata (for example the price that was too high).
    #[error("{0}")]
    WithMetadata(Box<ApiError>, Vec<(&'static str, String)>),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn unauthenticated(reason: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            reason,
            message: message.into(),
        }
    }

    pub fn permission_denied(reason: &'static str, message: impl Into<String>) -> Self {
        Self::PermissionDenied {
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            reason,
            message: message.into(),
        }
    }

    pub fn already_exists(reason: &'static str, message: impl Into<String>) -> Self {
        Self::AlreadyExists {
            reason,
            message: message.into(),
        }
    }

    pub fn failed_precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    /// Adds `ErrorInfo` metadata to this error.
    pub fn with_metadata(self, key: &'static str, value: impl Into<String>) -> Self {
        match self {
            ApiError::WithMetadata(inner, mut metadata) => {
                metadata.push((key, value.into()));
                ApiError::WithMetadata(inner, metadata)
            }
            other => ApiError::WithMetadata(Box::new(other), vec![(key, value.into())]),
        }
    }

    /// The `ErrorInfo` reason this error carries.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_) => "INVALID_ARGUMENT",
            ApiError::InvalidField { reason, .. }
            | ApiError::Unauthenticated { reason, .. }
            | ApiError::PermissionDenied { reason, .. }
            | ApiError::NotFound { reason, .. }
            | ApiError::AlreadyExists { reason, .. }
            | ApiError::FailedPrecondition { reason, .. }
            | ApiError::ResourceExhausted { reason, .. }
            | ApiError::Disabled { reason, .. }
            | ApiError::Unavailable { reason, .. }
            | ApiError::Aborted { reason, .. }
            | ApiError::OutOfRange { reason, .. } => reason,
            ApiError::Unimplemented { .. } => "NOT_IMPLEMENTED",
            ApiError::WithMetadata(inner, _) => inner.reason(),
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// The one mapping from an application error to a gRPC status.
    pub fn into_status(self) -> Status {
        let mut details = ErrorDetails::new();
        let mut retry = None;
        let (error, metadata) = match self {
            ApiError::WithMetadata(inner, metadata) => (*inner, metadata),
            other => (other, Vec::new()),
        };
        let (code, reason, message) = match error {
            ApiError::InvalidArgument(violations) => {
                let message = match violations.as_slice() {
                    [one] => format!("invalid {}: {}", one.field, one.description),
                    many => format!(
                        "invalid fields: {}",
                        many.iter()
                            .map(|v| v.field.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                (Code::InvalidArgument, "INVALID_ARGUMENT", message)
            }
            ApiError::InvalidField {
                reason,
                field,
                description,
            } => {
                let message = format!("invalid {field}: {description}");
                details.add_bad_request_violation(field, description);
                (Code::InvalidArgument, reason, message)
            }
            ApiError::Unauthenticated { reason, message } => {
                (Code::Unauthenticated, reason, message)
            }
            ApiError::PermissionDenied { reason, message } => {
                (Code::PermissionDenied, reason, message)
            }
            ApiError::NotFound { reason, message } => (Code::NotFound, reason, message),
            ApiError::AlreadyExists { reason, message } => (Code::AlreadyExists, reason, message),
            ApiError::FailedPrecondition { reason, message } => {
                (Code::FailedPrecondition, reason, message)
            }
            ApiError::ResourceExhausted {
                reason,
                message,
                retry_after,
            } => {
                retry = Some(retry_after);
                (Code::ResourceExhausted, reason, message)
            }
            ApiError::Unimplemented { capability } => (
                Code::Unimplemented,
                "NOT_IMPLEMENTED",
                format!("{capability} is not available yet"),
            ),
            ApiError::Disabled { reason, message } => (Code::Unimplemented, reason, message),
            ApiError::Unavailable {
                reason,
                message,
                retry_after,
            } => {
                retry = retry_after;
                (Code::Unavailable, reason, message)
            }
            ApiError::Aborted {
                reason,
                message,
                retry_after,
            } => {
                retry = Some(retry_after);
                (Code::Aborted, reason, message)
            }
            ApiError::OutOfRange {
                reason,
                field,
                description,
            } => {
                let message = format!("invalid {field}: {description}");
                details.add_bad_request_violation(field, description);
                (Code::OutOfRange, reason, message)
            }
            ApiError::WithMetadata(inner, _) => {
                // Nested metadata wrappers are flattened by `with_metadata`; a hand-built
                // nest keeps its outer metadata only.
                let status = inner.into_status();
                (status.code(), "INTERNAL", status.message().to_owned())
            }
            ApiError::Internal(error) => {
                // The cause is logged here, once, and never shown to the caller.
                let cause = format!("{error:#}");
                tracing::error!(error = %cause, "internal error");
                // On the call's Sentry report too (scrubbed), captured as it answers.
                crate::telemetry::reports::note_internal_cause(&cause);
                (
                    Code::Internal,
                    "INTERNAL",
                    "an internal error occurred; it has been logged".to_owned(),
                )
            }
        };
        details.set_error_info(
            reason,
            ERROR_DOMAIN,
            metadata
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<std::collections::HashMap<_, _>>(),
        );
        if retry.is_some() {
            details.set_retry_info(retry);
        }
        let mut status = Status::with_error_details(code, message, details);
        if let Some(retry) = retry
            && let Ok(value) = retry.as_secs().max(1).to_string().parse()
        {
            status.metadata_mut().insert("retry-after", value);
        }
        status
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        error.into_status()
    }
}

/// A storage failure (database or cache).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("cache: {0}")]
    Cache(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(sea_orm::DbErr::Conn(_) | sea_orm::DbErr::ConnectionAcquire(_))
                | StoreError::Cache(_)
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(error = %error, "storage unavailable");
            ApiError::Unavailable {
                reason: "STORAGE_UNAVAILABLE",
                message: "storage is unavailable; try again shortly".to_owned(),
                retry_after: Some(Duration::from_secs(1)),
            }
        } else {
            ApiError::Internal(anyhow::Error::new(error))
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        StoreError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_violation() {
        let status = ApiError::InvalidArgument(vec![
            FieldViolation::new("email", "is empty"),
            FieldViolation::new("password", "is too short"),
        ])
        .into_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations.len(), 2);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "INVALID_ARGUMENT");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn resource_exhausted_carries_retry_info_and_metadata() {
        let status = ApiError::ResourceExhausted {
            reason: "RATE_LIMITED",
            message: "slow down".into(),
            retry_after: Duration::from_secs(7),
        }
        .into_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.get_details_retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            status
                .metadata()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("7")
        );
    }

    #[test]
    fn internal_hides_the_cause() {
        let status = ApiError::Internal(anyhow::anyhow!("password=hunter2")).into_status();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }
}
