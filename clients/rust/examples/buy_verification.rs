//! Buys a verification and waits for its code on the `WatchVerification` stream.
//!
//! ```sh
//! NAMASKAH_API_KEY=nsk_… cargo run -p namaskah-client --example buy_verification -- whatsapp GB
//! NAMASKAH_EMAIL=me@example.com NAMASKAH_PASSWORD=… cargo run -p namaskah-client --example buy_verification
//! ```
//!
//! `NAMASKAH_GRPC_URL` is the server (default `http://localhost:50051`). The arguments are
//! the service and the country (default `whatsapp GB`). It prints
//! `code <verification name> <code>` and exits 0 when a code arrives, and fails when the
//! verification ends without one. A sandbox server sends a code by itself a few seconds
//! after the number is assigned.

use std::time::Duration;

use namaskah_client::{Credentials, Namaskah, v1};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn credentials() -> Result<Credentials> {
    if let Ok(key) = std::env::var("NAMASKAH_API_KEY") {
        return Ok(Credentials::ApiKey(key));
    }
    match (
        std::env::var("NAMASKAH_EMAIL"),
        std::env::var("NAMASKAH_PASSWORD"),
    ) {
        (Ok(email), Ok(password)) => Ok(Credentials::Password {
            email,
            password,
            totp_code: std::env::var("NAMASKAH_TOTP_CODE").ok(),
        }),
        _ => Err("set NAMASKAH_API_KEY, or NAMASKAH_EMAIL and NAMASKAH_PASSWORD".into()),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let url =
        std::env::var("NAMASKAH_GRPC_URL").unwrap_or_else(|_| "http://localhost:50051".into());
    let mut args = std::env::args().skip(1);
    let service = args.next().unwrap_or_else(|| "whatsapp".into());
    let country = args.next().unwrap_or_else(|| "GB".into());

    let namaskah = Namaskah::connect(url, credentials()?).await?;

    let bought = namaskah
        .verifications()
        .await?
        .create_verification(v1::CreateVerificationRequest {
            service,
            country,
            max_price: None,
            // A retry with the same id returns the same verification, never a second one.
            request_id: format!("example-{}", std::process::id()),
        })
        .await?
        .into_inner()
        .verification
        .ok_or("CreateVerification answered no verification")?;
    let price = bought.price.clone().unwrap_or_default();
    println!(
        "bought {}: {}, {} {} cents",
        bought.name, bought.phone_number, price.minor_units, price.currency_code
    );

    // A fresh client for the stream: the wrapper refreshes the session first if needed.
    let mut stream = namaskah
        .verifications()
        .await?
        .watch_verification(v1::WatchVerificationRequest {
            name: bought.name.clone(),
            after_sequence: 0,
        })
        .await?
        .into_inner();
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    loop {
        let answer = tokio::select! {
            answer = stream.message() => answer?,
            _ = &mut deadline => return Err("no code within two minutes".into()),
        };
        let Some(event) = answer.and_then(|a| a.event) else {
            return Err("the stream ended without a code".into());
        };
        let kind = event.r#type();
        let verification = event.verification.unwrap_or_default();
        println!(
            "event {} {}: {}",
            event.sequence,
            kind.as_str_name(),
            verification.status().as_str_name()
        );
        if !verification.code.is_empty() {
            println!("code {} {}", verification.name, verification.code);
            return Ok(());
        }
        if !matches!(
            verification.status(),
            v1::VerificationStatus::Pending | v1::VerificationStatus::Active
        ) {
            return Err("the verification ended without a code".into());
        }
    }
}
