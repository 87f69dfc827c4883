//! The request body size limit.
//!
//! A declared `content-length` over the limit is refused before anything is forwarded.
//! Bodies without one (chunked HTTP/1.1, HTTP/2 streams) are counted as they stream; when
//! the count passes the limit the body fails with [`BodyTooLarge`] and the request's
//! [`BodyLimit`] extension records it, so whoever was forwarding the body can answer 413
//! (or `RESOURCE_EXHAUSTED`) instead of reporting an upstream failure.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_LENGTH;
use http_body::{Frame, SizeHint};

use crate::reply::{Protocol, refuse};

/// Request extension: the limit that applies, and whether the body went past it.
#[derive(Debug, Clone)]
pub(crate) struct BodyLimit {
    max_bytes: usize,
    exceeded: Arc<AtomicBool>,
}

impl BodyLimit {
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Acquire)
    }

    /// The answer to a request whose body is over the limit.
    pub(crate) fn refusal(&self, protocol: Protocol) -> Response {
        too_large(protocol, self.max_bytes)
    }
}

/// The error a counted body fails with once it passes the limit.
#[derive(Debug, thiserror::Error)]
#[error("request body is larger than {max_bytes} bytes")]
pub(crate) struct BodyTooLarge {
    max_bytes: usize,
}

fn too_large(protocol: Protocol, max_bytes: usize) -> Response {
    refuse(
        protocol,
        StatusCode::PAYLOAD_TOO_LARGE,
        tonic::Status::resource_exhausted(BodyTooLarge { max_bytes }.to_string()),
    )
}

/// Middleware: refuses declared oversized bodies, counts the rest.
pub(crate) async fn enforce_body_limit(
    State(max_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_bytes as u64) {
        return too_large(Protocol::of(request.headers()), max_bytes);
    }

    let limit = BodyLimit {
        max_bytes,
        exceeded: Arc::default(),
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(limit.clone());
    let body = Body::new(CountedBody {
        inner: body,
        remaining: max_bytes,
        limit,
    });
    next.run(Request::from_parts(parts, body)).await
}

/// A body that fails once more than `limit.max_bytes` of data have gone through.
struct CountedBody {
    inner: Body,
    remaining: usize,
    limit: BodyLimit,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    match this.remaining.checked_sub(data.len()) {
                        Some(remaining) => this.remaining = remaining,
                        None => {
                            this.limit.exceeded.store(true, Ordering::Release);
                            return Poll::Ready(Some(Err(axum::Error::new(BodyTooLarge {
                                max_bytes: this.limit.max_bytes,
                            }))));
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
