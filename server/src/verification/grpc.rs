//! `VerificationService` handlers: thin translations to the lifecycle service, and the two
//! watch streams.
//!
//! A watch subscribes to the account's live feed before it reads storage, then sends the
//! snapshot or the stored events after `after_sequence`, then live events in sequence
//! order. A gap (an event it never heard, a lagging buffer, a Redis reconnect) is filled
//! from storage, so a watcher never skips or repeats a sequence number. Each stream is a
//! small state machine polled by the connection's task: no task or channel of its own.
//!
//! The live feed is a notification, not the record: an instance can commit a change and
//! die before it publishes. So the feed also sends every watcher a recheck once per
//! `NAMASKAH_WATCH_RECHECK`, and the watch then reads storage for the verifications it
//! follows that have not ended: nothing waits on a lost publication for longer than that.
use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::verification_service_server::VerificationService;
use prost::Message as _;
use tokio::sync::{broadcast, watch};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{self, Status as VStatus};
use super::feed::FeedEvent;
use super::service::{ListFilter, NewVerification, Verifications};
use super::view;
use crate::authn::caller;
use crate::convert::timestamp;
use crate::error::{ApiError, StoreError};

/// Stored events read per catch-up query.
const CATCH_UP_PAGE: u64 = 200;

pub struct VerificationApi {
    verifications: Arc<Verifications>,
    stop: watch::Receiver<bool>,
}

impl VerificationApi {
    /// `stop` turns true when the server shuts down: open streams then end with
    /// `UNAVAILABLE`, and clients resume elsewhere with `after_sequence`.
    pub fn new(verifications: Arc<Verifications>, stop: watch::Receiver<bool>) -> Self {
        Self {
            verifications,
            stop,
        }
    }

    fn watch(&self, rx: broadcast::Receiver<Arc<FeedEvent>>, only: Option<Uuid>) -> Watch {
        Watch {
            verifications: Arc::clone(&self.verifications),
            rx,
            stop: self.stop.clone(),
            only,
            last: HashMap::new(),
            ended: HashSet::new(),
            queue: VecDeque::new(),
            finished: false,
            error: None,
        }
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn decode(payload: &[u8]) -> Result<pb::VerificationEvent, Status> {
    pb::VerificationEvent::decode(payload).map_err(|e| {
        ApiError::from(StoreError::Corrupt(format!(
            "stored verification event: {e}"
        )))
        .into()
    })
}

fn is_terminal_event(event: &pb::VerificationEvent) -> bool {
    matches!(
        pb::VerificationEventType::try_from(event.r#type),
        Ok(pb::VerificationEventType::Completed
            | pb::VerificationEventType::Cancelled
            | pb::VerificationEventType::Expired
            | pb::VerificationEventType::Failed)
    )
}

fn snapshot(verification: pb::Verification) -> pb::VerificationEvent {
    pb::VerificationEvent {
        sequence: verification.last_sequence,
        r#type: pb::VerificationEventType::Snapshot as i32,
        create_time: Some(timestamp(chrono::Utc::now())),
        verification: Some(verification),
        message: None,
    }
}

fn shutting_down() -> Status {
    ApiError::Unavailable {
        reason: "SHUTTING_DOWN",
        message: "the server is shutting down; reconnect with after_sequence".to_owned(),
        retry_after: None,
    }
    .into()
}

/// The state of one watch stream.
struct Watch {
    verifications: Arc<Verifications>,
    rx: broadcast::Receiver<Arc<FeedEvent>>,
    stop: watch::Receiver<bool>,
    /// One verification (`WatchVerification`), or all of the account's.
    only: Option<Uuid>,
    /// The last sequence sent, per verification.
    last: HashMap<Uuid, i64>,
    /// Verifications whose terminal event was sent: a recheck skips them.
    ended: HashSet<Uuid>,
    queue: VecDeque<pb::VerificationEvent>,
    /// End after the queue drains (a single verification reached its end).
    finished: bool,
    /// A terminal error to send after the queue.
    error: Option<Status>,
}

impl Watch {
    /// Reads stored events of `id` after the last one sent.
    async fn catch_up(&mut self, id: Uuid) -> Result<(), Status> {
        loop {
            let after = self.last.get(&id).copied().unwrap_or(0);
            let events = self
                .verifications
                .events_after(id, after, CATCH_UP_PAGE)
                .await?;
            let n = events.len() as u64;
            for stored in events {
                self.accept(id, decode(&stored.payload)?);
            }
            if n < CATCH_UP_PAGE || self.finished {
                return Ok(());
            }
        }
    }

    fn accept(&mut self, id: Uuid, event: pb::VerificationEvent) {
        if self.finished {
            return;
        }
        self.last.insert(id, event.sequence);
        let terminal = is_terminal_event(&event);
        self.queue.push_back(event);
        if terminal {
            if self.only.is_some() {
                self.finished = true;
            } else {
                self.ended.insert(id);
            }
        }
    }

    /// Reads storage for every followed verification; for those whose end was sent only
    /// if `include_ended` (a message can still arrive after the end, but a periodic
    /// recheck leaves those to the feed).
    async fn catch_up_all(&mut self, include_ended: bool) -> Result<(), Status> {
        let known: Vec<Uuid> = match self.only {
            Some(id) => vec![id],
            None => self
                .last
                .keys()
                .filter(|id| include_ended || !self.ended.contains(id))
                .copied()
                .collect(),
        };
        for id in known {
            self.catch_up(id).await?;
        }
        Ok(())
    }

    /// Handles one live event.
    async fn on_event(&mut self, event: Arc<FeedEvent>) -> Result<(), Status> {
        if event.is_resync() {
            return self.catch_up_all(true).await;
        }
        if event.is_recheck() {
            return self.catch_up_all(false).await;
        }
        if self.only.is_some_and(|id| id != event.verification) {
            return Ok(());
        }
        match self.last.get(&event.verification).copied() {
            Some(last) if event.sequence <= last => Ok(()),
            Some(last) if event.sequence > last + 1 => self.catch_up(event.verification).await,
            // The next one, or the first event heard of a verification created after the
            // stream started (its earlier events are read if this is not its first).
            None if event.sequence > 1 && self.only.is_none() => {
                self.catch_up(event.verification).await
            }
            _ => {
                self.accept(event.verification, decode(&event.payload)?);
                Ok(())
            }
        }
    }

    /// The next message of the stream, or `None` when it ends.
    async fn next(&mut self) -> Option<Result<pb::VerificationEvent, Status>> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(Ok(event));
            }
            if let Some(error) = self.error.take() {
                self.finished = true;
                return Some(Err(error));
            }
            if self.finished {
                return None;
            }
            // Drained: give its buffer back before waiting (four events' worth, 2.4 KB, that
            // every idle stream would otherwise keep).
            if self.queue.capacity() > 0 {
                self.queue = VecDeque::new();
            }
            let received = tokio::select! {
                _ = self.stop.wait_for(|stop| *stop) => None,
                received = self.rx.recv() => Some(received),
            };
            // The reads an event may lead to are boxed: their futures (database queries)
            // would otherwise be part of every open stream's state while it waits.
            let outcome = match received {
                None => Err(shutting_down()),
                Some(Ok(event)) => Box::pin(self.on_event(event)).await,
                Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                    Box::pin(self.catch_up_all(true)).await
                }
                Some(Err(broadcast::error::RecvError::Closed)) => Err(shutting_down()),
            };
            if let Err(status) = outcome {
                self.error = Some(status);
            }
        }
    }
}

fn into_stream<T: Send + 'static>(
    watch: Watch,
    wrap: fn(pb::VerificationEvent) -> T,
) -> EventStream<T> {
    Box::pin(futures::stream::unfold(
        watch,
        move |mut watch| async move {
            let item = watch.next().await?;
            Some((item.map(wrap), watch))
        },
    ))
}

#[tonic::async_trait]
impl VerificationService for VerificationApi {
    async fn create_verification(
        &self,
        request: Request<pb::CreateVerificationRequest>,
    ) -> Result<Response<pb::CreateVerificationResponse>, Status> {
        let principal = caller(&request)?.clone();
        let r = request.get_ref();
        let view = self
            .verifications
            .create(
                &principal,
                NewVerification {
                    service: &r.service,
                    country: &r.country,
                    max_price: r.max_price.as_ref(),
                    request_id: &r.request_id,
                },
            )
            .await?;
        Ok(Response::new(pb::CreateVerificationResponse {
            verification: Some(view.to_proto()),
        }))
    }

    async fn get_verification(
        &self,
        request: Request<pb::GetVerificationRequest>,
    ) -> Result<Response<pb::GetVerificationResponse>, Status> {
        let principal = caller(&request)?;
        let view = self
            .verifications
            .get(principal, &request.get_ref().name)
            .await?;
        Ok(Response::new(pb::GetVerificationResponse {
            verification: Some(view.to_proto()),
        }))
    }

    async fn list_verifications(
        &self,
        request: Request<pb::ListVerificationsRequest>,
    ) -> Result<Response<pb::ListVerificationsResponse>, Status> {
        let principal = caller(&request)?;
        let r = request.get_ref();
        let mut statuses = Vec::new();
        for raw in &r.statuses {
            match pb::VerificationStatus::try_from(*raw) {
                Ok(pb::VerificationStatus::Unspecified) => {}
                Ok(status) => {
                    if let Some(s) = view::status_from_proto(status)
                        && !statuses.contains(&s)
                    {
                        statuses.push(s);
                    }
                }
                Err(_) => {
                    return Err(ApiError::invalid(
                        "statuses",
                        "holds a value that is not a VerificationStatus",
                    )
                    .into());
                }
            }
        }
        let (views, next_page_token) = self
            .verifications
            .list(
                principal,
                ListFilter {
                    page_size: r.page_size,
                    page_token: &r.page_token,
                    statuses,
                    service: &r.service,
                    country: &r.country,
                },
            )
            .await?;
        Ok(Response::new(pb::ListVerificationsResponse {
            verifications: views.iter().map(|v| v.to_proto()).collect(),
            next_page_token,
        }))
    }

    async fn cancel_verification(
        &self,
        request: Request<pb::CancelVerificationRequest>,
    ) -> Result<Response<pb::CancelVerificationResponse>, Status> {
        let principal = caller(&request)?;
        let view = self
            .verifications
            .cancel(principal, &request.get_ref().name)
            .await?;
        Ok(Response::new(pb::CancelVerificationResponse {
            verification: Some(view.to_proto()),
        }))
    }

    type WatchVerificationStream = EventStream<pb::WatchVerificationResponse>;

    async fn watch_verification(
        &self,
        request: Request<pb::WatchVerificationRequest>,
    ) -> Result<Response<Self::WatchVerificationStream>, Status> {
        let principal = caller(&request)?.clone();
        let r = request.get_ref();
        let id = domain::parse_name("name", &r.name)?;
        if r.after_sequence < 0 {
            return Err(ApiError::invalid("after_sequence", "must not be negative").into());
        }
        // Subscribe first, then read: nothing falls in between.
        let rx = self.verifications.feed().subscribe(principal.user_id);
        let row = self.verifications.owned_row(&principal, id).await?;
        if r.after_sequence > row.last_sequence {
            return Err(ApiError::OutOfRange {
                reason: "SEQUENCE_OUT_OF_RANGE",
                field: "after_sequence",
                description: format!(
                    "is beyond the last event ({}) of this verification",
                    row.last_sequence
                ),
            }
            .into());
        }
        let terminal = VStatus::parse(&row.status).is_some_and(VStatus::is_terminal);
        let mut watch = self.watch(rx, Some(id));
        watch.last.insert(id, r.after_sequence);
        if r.after_sequence == 0 {
            let view = self.verifications.view_of(row).await?;
            watch.last.insert(id, view.row.last_sequence);
            watch.queue.push_back(snapshot(view.to_proto()));
            watch.finished = terminal;
        } else {
            watch.catch_up(id).await?;
            if terminal {
                watch.finished = true;
            }
        }
        Ok(Response::new(into_stream(watch, |event| {
            pb::WatchVerificationResponse { event: Some(event) }
        })))
    }

    type WatchVerificationsStream = EventStream<pb::WatchVerificationsResponse>;

    async fn watch_verifications(
        &self,
        request: Request<pb::WatchVerificationsRequest>,
    ) -> Result<Response<Self::WatchVerificationsStream>, Status> {
        let principal = caller(&request)?.clone();
        let rx = self.verifications.feed().subscribe(principal.user_id);
        let mut watch = self.watch(rx, None);
        if request.get_ref().include_snapshots {
            for view in self.verifications.open_views(&principal).await? {
                watch.last.insert(view.row.id, view.row.last_sequence);
                watch.queue.push_back(snapshot(view.to_proto()));
            }
        }
        Ok(Response::new(into_stream(watch, |event| {
            pb::WatchVerificationsResponse { event: Some(event) }
        })))
    }
}
