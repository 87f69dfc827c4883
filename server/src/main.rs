//! `namaskah-server`: the gRPC server, its background jobs and (by default) the edge, in one
//! process. `namaskah-server migrate` applies the database migrations and exits.
use std::process::ExitCode;

use namaskah_server::{Application, Config, store, telemetry};

const USAGE: &str =
    "usage: namaskah-server [serve | migrate | healthcheck | admin create --email ADDRESS | help]

  serve    run the gRPC server, the jobs and the edge (the default)
  migrate  apply pending database migrations to DATABASE_URL and exit
  healthcheck
           ask the server at NAMASKAH_GRPC_ADDR (on this host) whether it is serving;
           exit 0 if so (for container health checks)
  admin create --email ADDRESS
           create an administrator (migrating first); the password is read from
           NAMASKAH_ADMIN_PASSWORD or, if that is unset, from the first line of standard
           input — never from a flag, which would leave it in the shell history

Configuration comes from environment variables; see the README.";

/// mimalloc rather than glibc's malloc: under load the calls' many small allocations, made
/// and freed on different worker threads, queued on glibc's arena locks (`perf` showed
/// `__lll_lock_wait_private` and `malloc_consolidate` at the top). Measured in
/// `benches/RESULTS.md`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("namaskah-server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    telemetry::init_logging();
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_owned());
    if matches!(command.as_str(), "help" | "--help" | "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("namaskah-server: {error}");
            return ExitCode::from(2);
        }
    };
    // One rustls crypto provider for the whole process (ring: sea-orm, reqwest and Sentry's
    // transport share it), installed before anything builds a TLS client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Sentry for the whole process (panics anywhere, every call's reports); the guard
    // sends what is queued when it drops at exit. Inert without SENTRY_DSN.
    let _sentry = (command == "serve")
        .then(|| telemetry::reports::init(&config.sentry))
        .flatten();
    let result = match command.as_str() {
        "serve" => serve(config).await,
        "migrate" => migrate(config).await,
        "healthcheck" => healthcheck(config).await,
        "admin" => admin(config, std::env::args().skip(2).collect()).await,
        other => {
            eprintln!("namaskah-server: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "namaskah-server failed");
            eprintln!("namaskah-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let application = Application::build(config).await?;
    application.run(namaskah_edge::shutdown_signal()).await
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let db = store::connect(&config).await?;
    store::migrate(&db).await?;
    println!("migrations applied");
    Ok(())
}

async fn healthcheck(config: Config) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let mut addr = config.grpc_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let check = async {
        let channel = match &config.tls {
            // The listener serves TLS with this certificate: trust exactly it.
            Some(identity) => {
                namaskah_edge::tls::pinned_channel(addr, identity.certificate().clone())
            }
            None => {
                tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                    .connect_timeout(std::time::Duration::from_secs(3))
                    .connect()
                    .await?
            }
        };
        anyhow::Ok(
            HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await?
                .into_inner()
                .status(),
        )
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(3), check)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {addr} within 3 s"))??;
    if status == ServingStatus::Serving {
        println!("serving");
        Ok(())
    } else {
        anyhow::bail!("not serving: {status:?}")
    }
}

async fn admin(config: Config, args: Vec<String>) -> anyhow::Result<()> {
    let email = match args.as_slice() {
        [create, flag, email] if create == "create" && flag == "--email" => email.clone(),
        [create, flag] if create == "create" && flag.starts_with("--email=") => {
            flag["--email=".len()..].to_owned()
        }
        _ => anyhow::bail!("usage: namaskah-server admin create --email ADDRESS"),
    };
    let password = match std::env::var("NAMASKAH_ADMIN_PASSWORD") {
        Ok(password) if !password.is_empty() => password,
        _ => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.is_empty() {
        anyhow::bail!("no password: set NAMASKAH_ADMIN_PASSWORD or write it to standard input");
    }
    let db = store::connect(&config).await?;
    store::migrate(&db).await?;
    match namaskah_server::identity::service::create_admin(&db, &email, &password).await {
        Ok(profile) => {
            println!(
                "administrator users/{} created for {}; log in, turn on two-factor \
                 authentication, and log in again with a code to use the admin RPCs",
                profile.id, profile.email
            );
            Ok(())
        }
        Err(error) => anyhow::bail!("{}", error.into_status().message()),
    }
}
