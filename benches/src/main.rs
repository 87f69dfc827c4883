//! `namaskah-load`: see `benches/README.md`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;

use namaskah_bench::cli::Cli;
use namaskah_bench::duration::format_duration_short;
use namaskah_bench::ledger::{self, redact_database_url};
use namaskah_bench::report::{GhzReport, RunDescription, Summary, render_text};
use namaskah_bench::runner::{self, Bound, LoadPlan};
use namaskah_bench::scenario::{Scenario, Workload, shell_export};
use namaskah_bench::{users, verifications};

/// The exit status when the ledger run happened but its books do not balance (or the
/// database holds another number of entries than the driver counted).
const BOOKS_DO_NOT_BALANCE: u8 = 2;
/// The exit status when a watch_streams run happened but streams failed to open, or a
/// watcher of a cancelled verification did not hear it.
const STREAMS_FAILED: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("namaskah-load: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let plan = cli.plan()?;
    if cli.scenario.is_database() {
        return run_ledger(cli, plan).await;
    }
    if cli.scenario.is_verification() {
        return run_verifications(cli, plan).await;
    }
    if cli.scenario == Scenario::Users {
        return run_users(cli, plan).await;
    }
    runner::check_address(&cli.addr)?;
    let channels = runner::connect(&cli.addr, plan.connections, cli.connect_timeout).await?;
    let workload = Workload::prepare(cli.scenario, &channels[0], &cli.credentials(), plan.timeout)
        .await
        .context("setting up the scenario")?;
    if cli.setup_only {
        for (name, value) in workload.credential_exports() {
            println!("{}", shell_export(name, &value));
        }
        return Ok(ExitCode::SUCCESS);
    }

    announce(&cli, &plan, &cli.addr);
    let description = describe(
        &cli,
        &plan,
        plan.connections,
        cli.addr.clone(),
        workload.data_json(),
        workload.metadata_shown(),
    );
    let outcome = runner::run(&plan, &channels, Arc::new(workload), interrupt()).await?;
    let summary = Summary::compute(&outcome.stats, outcome.total, outcome.end_reason);
    let text = render_text(&description, &summary);
    let report = GhzReport::new(&description, &summary, now());
    emit(&cli, &text, || {
        serde_json::to_value(&report).context("encoding the JSON report")
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn run_ledger(cli: Cli, plan: LoadPlan) -> anyhow::Result<ExitCode> {
    let options = cli.ledger_options()?;
    let target = redact_database_url(&options.database_url);
    if plan.connections != 1 {
        eprintln!(
            "namaskah-load: the ledger scenario ignores --connections; its pool holds --concurrency database connections (SQLite: one)"
        );
    }
    announce(&cli, &plan, &target);
    let description = describe(
        &cli,
        &plan,
        ledger::pool_size(&options.database_url, plan.concurrency),
        target,
        options.data_json(),
        BTreeMap::new(),
    );
    let outcome = ledger::run(&options, &plan, interrupt()).await?;
    let text = outcome.render_text(&description);
    emit(&cli, &text, || outcome.json(&description, now()))?;
    if outcome.books.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "namaskah-load: the books do not balance, or the database holds another number of entries than the driver counted"
        );
        Ok(ExitCode::from(BOOKS_DO_NOT_BALANCE))
    }
}

async fn run_verifications(cli: Cli, plan: LoadPlan) -> anyhow::Result<ExitCode> {
    let options = cli.verification_options()?;
    runner::check_address(&cli.addr)?;
    let channels = runner::connect(&cli.addr, plan.connections, cli.connect_timeout).await?;
    announce(&cli, &plan, &cli.addr);
    let description = describe(
        &cli,
        &plan,
        plan.connections,
        cli.addr.clone(),
        options.request_json(cli.scenario),
        BTreeMap::from([("x-api-key".to_owned(), "(each account's own)".to_owned())]),
    );
    if cli.scenario == Scenario::WatchStreams {
        let outcome = verifications::run_watch(&options, &plan, &channels, interrupt()).await?;
        let text = outcome.render_text(&description);
        emit(&cli, &text, || outcome.json(&description, now()))?;
        if outcome.ok() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "namaskah-load: not every stream opened, or not every watcher of a cancelled verification heard it"
        );
        return Ok(ExitCode::from(STREAMS_FAILED));
    }
    let outcome =
        verifications::run_calls(cli.scenario, &options, &plan, &channels, interrupt()).await?;
    let text = outcome.render_text(&description);
    emit(&cli, &text, || outcome.json(&description, now()))?;
    Ok(ExitCode::SUCCESS)
}

async fn run_users(cli: Cli, plan: LoadPlan) -> anyhow::Result<ExitCode> {
    let options = cli.user_options()?;
    runner::check_address(&cli.addr)?;
    let channels = runner::connect(&cli.addr, plan.connections, cli.connect_timeout).await?;
    announce(&cli, &plan, &cli.addr);
    let description = describe(
        &cli,
        &plan,
        plan.connections,
        cli.addr.clone(),
        options.request_json(plan.concurrency),
        BTreeMap::from([(
            "authorization".to_owned(),
            "(each user's own session)".to_owned(),
        )]),
    );
    let outcome = users::run(&options, &plan, &channels, interrupt()).await?;
    let text = outcome.render_text(&description);
    emit(&cli, &text, || outcome.json(&description, now()))?;
    Ok(ExitCode::SUCCESS)
}

fn announce(cli: &Cli, plan: &LoadPlan, target: &str) {
    let bound = match plan.bound {
        Bound::Duration(duration) if cli.scenario == Scenario::WatchStreams => {
            format!(
                "{} streams held for {}",
                cli.streams,
                format_duration_short(duration)
            )
        }
        Bound::Duration(duration) => format!("for {}", format_duration_short(duration)),
        Bound::Total(total) if cli.scenario.is_database() => format!("for {total} cycles"),
        Bound::Total(total) => format!("for {total} calls"),
    };
    let lanes = if cli.scenario.is_database() {
        format!("{} in flight", plan.concurrency)
    } else if cli.scenario == Scenario::Users {
        format!(
            "{} users over {} connections",
            plan.concurrency, plan.connections
        )
    } else if cli.scenario == Scenario::WatchStreams {
        format!(
            "{} connections, {} streams opening at once",
            plan.connections, plan.concurrency
        )
    } else {
        format!(
            "{} connections × {} in flight",
            plan.connections, plan.concurrency
        )
    };
    eprintln!(
        "namaskah-load: {} against {target}: {lanes} {bound}, warm-up {}",
        cli.scenario.name(),
        format_duration_short(plan.warmup),
    );
}

fn describe(
    cli: &Cli,
    plan: &LoadPlan,
    connections: usize,
    host: String,
    data: serde_json::Value,
    metadata: BTreeMap<String, String>,
) -> RunDescription {
    RunDescription {
        name: cli.name.clone(),
        scenario: cli.scenario.name().to_owned(),
        call: cli.scenario.call().to_owned(),
        host,
        connections: connections as u64,
        concurrency: plan.concurrency as u64,
        unit: if cli.scenario.is_database() {
            "cycles"
        } else if cli.scenario == Scenario::WatchStreams {
            "streams"
        } else {
            "calls"
        },
        total_requests: match plan.bound {
            Bound::Total(total) => Some(total),
            Bound::Duration(_) if cli.scenario == Scenario::WatchStreams => {
                Some(cli.streams as u64)
            }
            Bound::Duration(_) => None,
        },
        duration: match plan.bound {
            Bound::Duration(duration) => Some(duration),
            Bound::Total(_) => None,
        },
        warmup: plan.warmup,
        timeout: plan.timeout,
        connect_timeout: cli.connect_timeout,
        data,
        metadata,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    }
}

/// Completes on Ctrl-C.
async fn interrupt() {
    // If no handler can be installed, run to the end rather than stop at once.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Prints the text report, and writes the JSON one where `--json` says.
fn emit(
    cli: &Cli,
    text: &str,
    json: impl FnOnce() -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<()> {
    let json_to_stdout = cli.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if json_to_stdout {
        // Keep standard output pure JSON.
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&json()?).context("encoding the JSON report")?;
        if json_to_stdout {
            println!("{json}");
        } else {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(file, "{json}").with_context(|| format!("writing {}", path.display()))?;
            eprintln!("namaskah-load: wrote {}", path.display());
        }
    }
    Ok(())
}
