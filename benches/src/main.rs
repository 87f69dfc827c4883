//! `namaskah-load`: see `benches/README.md`.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;

use namaskah_bench::cli::Cli;
use namaskah_bench::duration::format_duration_short;
use namaskah_bench::report::{GhzReport, RunDescription, Summary, render_text};
use namaskah_bench::runner::{self, Bound};
use namaskah_bench::scenario::{Workload, shell_export};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("namaskah-load: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let plan = cli.plan()?;
    runner::check_address(&cli.addr)?;
    let channels = runner::connect(&cli.addr, plan.connections, cli.connect_timeout).await?;
    let workload = Workload::prepare(cli.scenario, &channels[0], &cli.credentials(), plan.timeout)
        .await
        .context("setting up the scenario")?;
    if cli.setup_only {
        for (name, value) in workload.credential_exports() {
            println!("{}", shell_export(name, &value));
        }
        return Ok(());
    }

    let bound = match plan.bound {
        Bound::Duration(duration) => format!("for {}", format_duration_short(duration)),
        Bound::Total(total) => format!("for {total} calls"),
    };
    eprintln!(
        "namaskah-load: {} against {}: {} connections × {} in flight {bound}, warm-up {}",
        cli.scenario.name(),
        cli.addr,
        plan.connections,
        plan.concurrency,
        format_duration_short(plan.warmup),
    );

    let description = RunDescription {
        name: cli.name.clone(),
        scenario: cli.scenario.name().to_owned(),
        call: cli.scenario.call().to_owned(),
        host: cli.addr.clone(),
        connections: plan.connections as u64,
        concurrency: plan.concurrency as u64,
        total_requests: match plan.bound {
            Bound::Total(total) => Some(total),
            Bound::Duration(_) => None,
        },
        duration: match plan.bound {
            Bound::Duration(duration) => Some(duration),
            Bound::Total(_) => None,
        },
        warmup: plan.warmup,
        timeout: plan.timeout,
        connect_timeout: cli.connect_timeout,
        data: workload.data_json(),
        metadata: workload.metadata_shown(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    };

    let interrupt = async {
        // If no handler can be installed, run to the end rather than stop at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let outcome = runner::run(&plan, &channels, Arc::new(workload), interrupt).await?;
    let summary = Summary::compute(&outcome.stats, outcome.total, outcome.end_reason);

    let json_to_stdout = cli.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    let text = render_text(&description, &summary);
    if json_to_stdout {
        // Keep standard output pure JSON.
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if let Some(path) = &cli.json {
        let date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let report = GhzReport::new(&description, &summary, date);
        let json = serde_json::to_string_pretty(&report).context("encoding the JSON report")?;
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
