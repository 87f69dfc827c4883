//! Assembles the application: storage, cache, mail, the rooms, and the listeners. Tests
//! build it exactly as `main` does, on port 0.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use namaskah_proto::v1::admin_service_server::AdminServiceServer;
use namaskah_proto::v1::analytics_service_server::AnalyticsServiceServer;
use namaskah_proto::v1::auth_service_server::AuthServiceServer;
use namaskah_proto::v1::catalog_service_server::CatalogServiceServer;
use namaskah_proto::v1::sandbox_service_server::SandboxServiceServer;
use namaskah_proto::v1::subscription_service_server::SubscriptionServiceServer;
use namaskah_proto::v1::tenant_service_server::TenantServiceServer;
use namaskah_proto::v1::verification_service_server::VerificationServiceServer;
use namaskah_proto::v1::wallet_service_server::WalletServiceServer;
use namaskah_proto::v1::webhook_service_server::WebhookServiceServer;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::admin::grpc::AdminApi;
use crate::admin::service::Admin;
use crate::analytics::events::Tracker;
use crate::analytics::grpc::AnalyticsApi;
use crate::analytics::service::Analytics;
use crate::authn::AuthLayer;
use crate::billing::grpc::SubscriptionApi;
use crate::billing::limits::{Limiter, LoginGuard, RateLimitLayer};
use crate::billing::service::{Billing, Settings as BillingSettings};
use crate::cache::{Cache, InProcessCache, RedisCache};
use crate::catalog::grpc::CatalogApi;
use crate::catalog::inventory::Inventory;
use crate::catalog::service::Catalog;
use crate::config::Config;
use crate::identity::grpc::AuthApi;
use crate::identity::service::{Identity, IdentitySettings};
use crate::payments::gateway::Gateway;
use crate::payments::grpc::{SandboxApi, WebhookApi};
use crate::payments::paystack::Paystack;
use crate::payments::sandbox::SandboxGateway;
use crate::payments::service::Payments;
use crate::providers::Provider;
use crate::providers::fivesim::FiveSim;
use crate::providers::instrumented::Instrumented;
use crate::providers::router::Router;
use crate::providers::sandbox::SandboxProvider;
use crate::providers::textverified::TextVerified;
use crate::telemetry::{Telemetry, TelemetryLayer};
use crate::tenant::grpc::TenantApi;
use crate::tenant::service::{TenantSettings, Tenants};
use crate::verification::feed::Feed;
use crate::verification::grpc::VerificationApi;
use crate::verification::service::{Settings as VerificationSettings, Verifications};
use crate::wallet::grpc::WalletApi;
use crate::{mail, store};

/// How often API-key last-use times are written.
const KEY_USAGE_FLUSH: Duration = Duration::from_secs(15);
/// How often queued conversion events are written (a crash loses at most this much).
const ANALYTICS_FLUSH: Duration = Duration::from_secs(1);
/// How often the analytics rollup job runs (reports add what is newer from the raw tables).
const ANALYTICS_ROLLUP_INTERVAL: Duration = Duration::from_secs(60);
/// Largest request message accepted (bytes).
const MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub outbox: mail::Outbox,
    pub cache: Arc<dyn Cache>,
    pub identity: Arc<Identity>,
    pub payments: Arc<Payments>,
    pub catalog: Arc<Catalog>,
    pub verifications: Arc<Verifications>,
    pub billing: Arc<Billing>,
    /// Conversion events and the administrators' reports.
    pub analytics: Arc<Analytics>,
    pub limiter: Arc<Limiter>,
    /// The time billing runs on (tests move it forward).
    pub clock: Arc<crate::clock::Clock>,
    /// Request telemetry: Sentry reporting, the slow-call threshold, the `/metrics` address.
    pub telemetry: Arc<Telemetry>,
}

/// A built application with its listeners bound, ready to serve.
pub struct Application {
    config: Config,
    state: AppState,
    grpc: TcpListener,
    edge: Option<TcpListener>,
    /// The `/metrics` listener and the registry it serves.
    metrics: Option<(TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
}

impl Application {
    /// Connects storage, applies migrations and binds the listeners (port 0 binds a free
    /// port; read it back with [`Application::grpc_addr`]).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        if config.jwt_secret_generated {
            tracing::warn!(
                "NAMASKAH_JWT_SECRET is not set: using a random key for this process (sandbox mode). Tokens will not survive a restart or work across instances."
            );
        }
        let db = store::connect(&config)
            .await
            .with_context(|| "cannot open the database named by DATABASE_URL")?;
        store::migrate(&db)
            .await
            .with_context(|| "cannot apply database migrations")?;

        let cache: Arc<dyn Cache> = match &config.redis_url {
            Some(url) => Arc::new(
                RedisCache::connect(url, &config.redis_prefix)
                    .await
                    .with_context(|| "cannot connect to REDIS_URL")?,
            ),
            None => Arc::new(InProcessCache::default()),
        };
        let outbox = mail::Outbox::new(mail::from_config(&config.mail, &config.mail_from)?);
        let tracker = Tracker::spawn(db.clone(), ANALYTICS_FLUSH);
        let identity = Arc::new(
            Identity::new(
                db.clone(),
                Arc::clone(&cache),
                outbox.clone(),
                tracker.clone(),
                IdentitySettings {
                    jwt_secret: config.jwt_secret.clone(),
                    access_token_ttl: config.access_token_ttl,
                    refresh_token_ttl: config.refresh_token_ttl,
                    public_url: config.public_url.clone(),
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        );

        let paystack = match &config.paystack {
            Some(paystack) => Some(Arc::new(Paystack::new(
                paystack.base_url.clone(),
                paystack.secret_key.clone(),
                config.gateway_timeout,
            )?) as Arc<dyn Gateway>),
            None => None,
        };
        // With a real gateway configured, the sandbox gateway is off even in sandbox mode: a
        // sandbox top-up could otherwise credit a real wallet without payment.
        let sandbox_gateway = (config.sandbox && config.paystack.is_none()).then(|| {
            Arc::new(SandboxGateway::new(
                db.clone(),
                &config.jwt_secret,
                &config.public_url,
            ))
        });
        let payments = Arc::new(Payments::new(
            db.clone(),
            Arc::clone(&identity),
            paystack,
            sandbox_gateway,
            config.gateway_rate.clone(),
            config.public_url.clone(),
            tracker.clone(),
        ));

        // The providers, in order of preference. The sandbox provider serves only when no
        // real provider is configured: a sandbox number must never be sold as a real one.
        let mut providers: Vec<Arc<dyn Provider>> = Vec::new();
        if let Some(tv) = &config.textverified {
            providers.push(Arc::new(TextVerified::new(
                tv.base_url.clone(),
                tv.username.clone(),
                tv.api_key.clone(),
                config.provider_timeout,
            )?));
        }
        if let Some(fivesim) = &config.fivesim {
            providers.push(Arc::new(FiveSim::new(
                fivesim.base_url.clone(),
                fivesim.api_key.clone(),
                config.provider_timeout,
            )?));
        }
        let sandbox_provider = (config.sandbox && providers.is_empty()).then(|| {
            Arc::new(SandboxProvider::new(
                Default::default(),
                config.sandbox_sms_delay,
            ))
        });
        if let Some(sandbox) = &sandbox_provider {
            providers.push(Arc::clone(sandbox) as Arc<dyn Provider>);
        }
        // Every provider call is counted, timed and traced, whoever makes it.
        let providers = providers
            .into_iter()
            .map(|p| Arc::new(Instrumented::new(p)) as Arc<dyn Provider>)
            .collect();
        let router = Arc::new(Router::new(providers));
        let catalog = Arc::new(Catalog::new(
            db.clone(),
            Arc::clone(&cache),
            Arc::clone(&identity),
            Arc::clone(&router) as Arc<dyn Inventory>,
            config.plans.clone(),
        ));
        identity.set_brands(&(Arc::clone(&catalog) as Arc<dyn crate::identity::service::Brands>));
        identity.set_tenant_gate(
            &(Arc::clone(&catalog) as Arc<dyn crate::identity::service::TenantGate>),
        );
        let seeded = catalog
            .seed()
            .await
            .with_context(|| "cannot seed the catalog")?;
        tracing::info!(?seeded, providers = ?router.names(), "catalog seeded");
        if let Some(sandbox) = &sandbox_provider {
            sandbox.set_calling_codes(
                catalog
                    .calling_codes()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            );
        }
        let feed = Arc::new(match &config.redis_url {
            Some(url) => Feed::redis(url, &config.redis_prefix)
                .await
                .with_context(|| "cannot subscribe to verification events on REDIS_URL")?,
            None => Feed::in_process(),
        });
        let verifications = Arc::new(Verifications::new(
            db.clone(),
            Arc::clone(&catalog),
            Arc::clone(&identity),
            router,
            feed,
            tracker.clone(),
            VerificationSettings {
                ttl: config.verification_ttl,
                create_wait: config.provider_timeout + Duration::from_secs(5),
                pending_deadline: config.provider_timeout * 10 + Duration::from_secs(30),
                textverified_webhook_secret: config
                    .textverified
                    .as_ref()
                    .and_then(|tv| tv.webhook_secret.clone()),
            },
        ));

        let limiter = Arc::new(match &config.redis_url {
            Some(url) => Limiter::redis(url, &config.redis_prefix, config.rate_limits.fallback)
                .await
                .with_context(|| "cannot connect the rate limiter to REDIS_URL")?,
            None => Limiter::in_process(),
        });
        identity.set_login_guard(Arc::new(LoginGuard::new(Arc::clone(&limiter))));
        let clock = Arc::new(crate::clock::Clock::default());
        let billing = Arc::new(
            Billing::new(
                db.clone(),
                Arc::clone(&cache),
                Arc::clone(&identity),
                outbox.clone(),
                config.plans.clone(),
                Arc::clone(&clock),
                BillingSettings {
                    usage_flush: config.usage_flush,
                },
            )
            .with_tracker(tracker.clone()),
        );

        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on NAMASKAH_GRPC_ADDR {}", config.grpc_addr))?;
        let edge = match config.edge_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on NAMASKAH_EDGE_ADDR {addr}"))?,
            ),
            None => None,
        };
        let telemetry = Arc::new(Telemetry::new(&config));
        let metrics = match config.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on NAMASKAH_METRICS_ADDR {addr}"))?;
                telemetry.set_metrics_addr(listener.local_addr()?);
                let handle = crate::telemetry::metrics::install()
                    .with_context(|| "cannot start the metrics registry")?;
                Some((listener, handle))
            }
            None => None,
        };
        tracing::info!(
            database = %redact_url(&config.database_url),
            cache = cache.kind(),
            sandbox = config.sandbox,
            "storage ready"
        );
        let analytics = Arc::new(Analytics::new(db.clone(), tracker));
        Ok(Self {
            state: AppState {
                db,
                outbox,
                cache,
                identity,
                payments,
                catalog,
                verifications,
                billing,
                analytics,
                limiter,
                clock,
                telemetry,
            },
            config,
            grpc,
            edge,
            metrics,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().unwrap_or(self.config.grpc_addr)
    }

    pub fn edge_addr(&self) -> Option<SocketAddr> {
        self.edge.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where `/metrics` is served (`None` when `NAMASKAH_METRICS_ADDR` is off).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.state.telemetry.metrics_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight calls finish
    /// (up to `NAMASKAH_SHUTDOWN_TIMEOUT`), flushes pending writes and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            config,
            state,
            grpc,
            edge,
            metrics,
        } = self;
        let (mut health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<AuthServiceServer<AuthApi>>()
            .await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(namaskah_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(namaskah_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        // One shutdown signal, fanned out to every listener and job.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let auth = AuthServiceServer::new(AuthApi::new(Arc::clone(&state.identity)))
            .max_decoding_message_size(MAX_MESSAGE_SIZE);
        let admin = Arc::new(Admin::new(
            state.db.clone(),
            Arc::clone(&state.identity),
            Arc::clone(&state.catalog),
            Arc::clone(&state.verifications),
        ));
        let routes = Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(auth)
            .add_service(
                CatalogServiceServer::new(CatalogApi::new(
                    Arc::clone(&state.catalog),
                    Arc::new(crate::catalog::rates::SuccessRates::new(state.db.clone())),
                ))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                VerificationServiceServer::new(VerificationApi::new(
                    Arc::clone(&state.verifications),
                    stop_rx.clone(),
                ))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                WalletServiceServer::new(WalletApi::new(
                    state.db.clone(),
                    Arc::clone(&state.payments),
                ))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                SubscriptionServiceServer::new(SubscriptionApi::new(Arc::clone(&state.billing)))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                AnalyticsServiceServer::new(AnalyticsApi::new(
                    Arc::clone(&state.analytics),
                    Arc::clone(&admin),
                    Arc::clone(&state.identity),
                    Arc::clone(&state.catalog),
                    config.rate_limits.trusted_proxies.clone(),
                ))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                AdminServiceServer::new(AdminApi::new(
                    Arc::clone(&admin),
                    config.rate_limits.trusted_proxies.clone(),
                ))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                TenantServiceServer::new(TenantApi::new(
                    Arc::new(Tenants::new(
                        state.db.clone(),
                        Arc::clone(&state.identity),
                        Arc::clone(&state.catalog),
                        Arc::clone(&admin),
                        TenantSettings {
                            max_markup_bp: config.tenant_max_markup_bp,
                            platform_hosts: config.platform_hosts.clone(),
                            platform_website: config.public_url.as_str().to_owned(),
                        },
                    )),
                    config.rate_limits.trusted_proxies.clone(),
                ))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                SandboxServiceServer::new(SandboxApi::new(
                    Arc::clone(&state.payments),
                    Arc::clone(&state.verifications),
                    config.sandbox,
                ))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                WebhookServiceServer::new(WebhookApi::new(
                    Arc::clone(&state.payments),
                    Arc::clone(&state.verifications),
                ))
                // The edge forwards bodies up to 1 MiB: room for the headers too.
                .max_decoding_message_size(MAX_MESSAGE_SIZE + 64 * 1024),
            )
            .prepare();

        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let layers = tower::ServiceBuilder::new()
            .layer(TelemetryLayer::new(Arc::clone(&state.telemetry)))
            .layer(AuthLayer::new(
                Arc::clone(&state.identity),
                Arc::clone(&state.catalog),
            ))
            .layer(RateLimitLayer::new(
                Arc::clone(&state.limiter),
                Arc::clone(&state.billing) as Arc<dyn crate::billing::AccountPlans>,
                &config.rate_limits,
            ))
            .into_inner();

        let grpc_addr = grpc.local_addr()?;
        let grpc_server = Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .layer(layers.clone())
            .add_routes(routes.clone());
        let grpc_stop = stopped(stop_rx.clone());
        let mut tasks = tokio::task::JoinSet::new();
        match &config.tls {
            Some(identity) => {
                let tls = identity
                    .server_config(&[b"h2"])
                    .context("NAMASKAH_TLS_CERT / NAMASKAH_TLS_KEY")?;
                let incoming = namaskah_edge::tls::TlsIncoming::new(grpc, tls)?.into_stream();
                tasks.spawn(async move {
                    grpc_server
                        .serve_with_incoming_shutdown(incoming, grpc_stop)
                        .await
                        .context("gRPC server")
                });
            }
            None => {
                // Nagle off on every accepted connection (tonic only does that for the
                // listeners it binds itself): with it on, a response written in more than one
                // piece waited for the client's delayed ACK, some 40 ms.
                let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
                tasks.spawn(async move {
                    grpc_server
                        .serve_with_incoming_shutdown(incoming, grpc_stop)
                        .await
                        .context("gRPC server")
                });
            }
        }
        tracing::info!(
            address = %grpc_addr,
            tls = config.tls.is_some(),
            "gRPC listening (health, reflection, namaskah.v1)"
        );

        if let Some(edge) = edge {
            let edge_addr = edge.local_addr()?;
            // The same edge as the `namaskah-edge` binary (grpc-web, webhooks, /healthz),
            // forwarding to this process's gRPC listener over loopback.
            let local = match grpc_addr {
                SocketAddr::V4(a) if a.ip().is_unspecified() => {
                    SocketAddr::from(([127, 0, 0, 1], a.port()))
                }
                SocketAddr::V6(a) if a.ip().is_unspecified() => {
                    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
                }
                other => other,
            };
            // With TLS the edge reaches this process's listener over TLS too, trusting
            // exactly the configured certificate.
            let upstream = match &config.tls {
                Some(identity) => {
                    namaskah_edge::tls::pinned_channel(local, identity.certificate().clone())
                }
                None => namaskah_edge::upstream_channel(
                    format!("http://{local}")
                        .parse()
                        .context("the gRPC listener's address")?,
                ),
            };
            let edge_stop = stopped(stop_rx.clone());
            let options = namaskah_edge::EdgeOptions {
                cors_origins: config.cors_origins.clone(),
                ..namaskah_edge::EdgeOptions::default()
            };
            let tls = config.tls.clone();
            tasks.spawn(async move {
                match tls {
                    Some(identity) => {
                        namaskah_edge::tls::serve_tls_with(
                            edge, &identity, upstream, options, edge_stop,
                        )
                        .await
                    }
                    None => namaskah_edge::serve_with(edge, upstream, options, edge_stop).await,
                }
                .context("edge server")
            });
            tracing::info!(
                address = %edge_addr,
                tls = config.tls.is_some(),
                "edge listening (grpc-web, webhooks)"
            );
        }

        if let Some((listener, handle)) = metrics {
            let metrics_addr = listener.local_addr()?;
            let metrics_stop = stopped(stop_rx.clone());
            let db = state.db.clone();
            tasks.spawn(async move {
                crate::telemetry::endpoint::serve(listener, handle, db, metrics_stop)
                    .await
                    .context("metrics listener")
            });
            tracing::info!(address = %metrics_addr, "metrics listening (/metrics)");
        }

        tasks.spawn(crate::verification::jobs::run(
            Arc::clone(&state.verifications),
            config.job_interval,
            stop_rx.clone(),
        ));

        tasks.spawn(crate::verification::feed::run_rechecks(
            Arc::clone(state.verifications.feed()),
            config.watch_recheck,
            stop_rx.clone(),
        ));

        tasks.spawn(crate::billing::jobs::run(
            Arc::clone(&state.billing),
            config.job_interval,
            config.usage_flush,
            stop_rx.clone(),
        ));

        tasks.spawn(crate::analytics::service::run_rollups(
            Arc::clone(&state.analytics),
            ANALYTICS_ROLLUP_INTERVAL,
            stop_rx.clone(),
        ));

        let identity = Arc::clone(&state.identity);
        let mut flush_stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(KEY_USAGE_FLUSH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => identity.flush_key_usage().await,
                    _ = flush_stop.changed() => break,
                }
            }
            Ok(())
        });

        // Wait for the shutdown request or for a listener to fail.
        tokio::select! {
            () = shutdown => tracing::info!("shutdown requested: draining"),
            Some(result) = tasks.join_next() => {
                let _ = stop_tx.send(true);
                return match result {
                    Ok(Ok(())) => Err(anyhow::anyhow!("a listener stopped unexpectedly")),
                    Ok(Err(error)) => Err(error),
                    Err(error) => Err(error.into()),
                };
            }
        }
        // Load balancers polling the health check stop sending new calls.
        health_reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        health_reporter
            .set_not_serving::<AuthServiceServer<AuthApi>>()
            .await;
        let _ = stop_tx.send(true);
        // Health watchers (load balancers) have seen NOT_SERVING; ending their streams lets
        // the connections close instead of holding the drain until the deadline.
        for service in [
            "",
            <AuthServiceServer<AuthApi> as tonic::server::NamedService>::NAME,
        ] {
            health_reporter.clear_service_status(service).await;
        }
        state.identity.flush_key_usage().await;
        let drained = tokio::time::timeout(config.shutdown_timeout, async {
            while let Some(result) = tasks.join_next().await {
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::error!(error = format!("{error:#}"), "while draining")
                    }
                    Err(error) => tracing::error!(%error, "task failed while draining"),
                }
            }
            state.outbox.drain().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                timeout_s = config.shutdown_timeout.as_secs(),
                "in-flight calls or mail did not finish in time; closing them"
            );
            tasks.abort_all();
        }
        state.identity.flush_key_usage().await;
        state.analytics.tracker().flush().await;
        // Queued Sentry reports go out before the process ends.
        let telemetry = Arc::clone(&state.telemetry);
        let _ = tokio::task::spawn_blocking(move || telemetry.flush(Duration::from_secs(2))).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
