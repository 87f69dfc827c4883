//! A bare tonic server with only `grpc.health.v1`, to measure the load driver's own ceiling
//! on a machine: if `namaskah-load --scenario health` against this is not far above what it
//! reaches against `namaskah-server`, the driver (or the machine) is the bottleneck.
//!
//! `cargo run --release -p namaskah-bench --example bare_health_server -- 127.0.0.1:50099`

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50099".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("bare health server on {}", listener.local_addr()?);
    let (_reporter, health) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    Ok(())
}
