//! `namaskah-analytics`: fills a PostgreSQL database with a year of realistic data and times
//! the analytics RPCs over it (see `benches/README.md`, `src/analytics_data.rs`).
use std::process::ExitCode;

use clap::Parser;
use namaskah_bench::analytics_data::{self, Size};
use namaskah_bench::ledger::redact_database_url;

#[derive(Parser, Debug)]
#[command(
    name = "namaskah-analytics",
    about = "A year of data, and the analytics RPCs timed over it"
)]
struct Args {
    /// An empty PostgreSQL database (the migrations are applied).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    #[arg(long, default_value_t = 1_000_000)]
    verifications: u64,
    #[arg(long, default_value_t = 500_000)]
    client_events: u64,
    /// Skip the fill: measure a database filled before.
    #[arg(long)]
    measure_only: bool,
    /// Calls of each RPC after the rollup.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("namaskah-analytics: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    println!("database: {}", redact_database_url(&args.database_url));
    if !args.measure_only {
        let db = analytics_data::connect(&args.database_url).await?;
        analytics_data::fill(
            &db,
            Size {
                users: args.users,
                verifications: args.verifications,
                client_events: args.client_events,
                days: 365,
            },
        )
        .await?;
    }
    let timings = analytics_data::measure(&args.database_url, args.rounds).await?;
    println!(
        "\n{:<40} {:>14} {:>12} {:>12}",
        "RPC over the last 90 days", "before rollup", "median", "slowest"
    );
    for t in timings {
        println!(
            "{:<40} {:>11.1} ms {:>9.1} ms {:>9.1} ms",
            t.rpc,
            t.cold.as_secs_f64() * 1e3,
            t.median.as_secs_f64() * 1e3,
            t.slowest.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
