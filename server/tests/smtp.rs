//! Mail over SMTP (`SMTP_URL`), against a tiny SMTP server written here: it speaks enough of
//! RFC 5321 for a client that sends plain text (greeting, EHLO/HELO, MAIL, RCPT, DATA, QUIT)
//! and hands every accepted message to the test. Everything is bounded in time, so a broken
//! client or server fails the test instead of hanging it.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use common::*;
use namaskah_proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// The longest any single step may take before the test gives up.
const STEP: Duration = Duration::from_secs(10);

/// One message the fake server accepted.
#[derive(Debug, Clone)]
struct Received {
    mail_from: String,
    rcpt_to: Vec<String>,
    /// The DATA section, dot-unstuffed, without the terminating `.` line.
    data: String,
}

impl Received {
    /// The headers and the body, split at the first empty line.
    fn split(&self) -> (&str, &str) {
        self.data
            .split_once("\r\n\r\n")
            .expect("a message has headers and a body")
    }

    /// The value of a header (unfolded), matched without letter case.
    fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = self.split();
        let unfolded = headers.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The body as text, decoded from its Content-Transfer-Encoding.
    fn text(&self) -> String {
        let (_, body) = self.split();
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_else(|| "7bit".into())
            .to_ascii_lowercase();
        match encoding.as_str() {
            "7bit" | "8bit" | "binary" => body.to_owned(),
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("a base64 body");
                String::from_utf8(bytes).expect("a UTF-8 body")
            }
            other => panic!("unexpected Content-Transfer-Encoding {other}"),
        }
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("a =XX escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("a UTF-8 body")
}

/// The address inside `<…>` of a MAIL FROM / RCPT TO argument.
fn angle_address(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..]
        .find('>')
        .map_or(argument.len(), |i| start + i);
    argument[start..end].to_owned()
}

/// A fake SMTP server on 127.0.0.1:0. The first `refuse_first` connections are turned away
/// with `421` (a temporary failure, as a busy server answers).
struct FakeSmtp {
    port: u16,
    received: mpsc::UnboundedReceiver<Received>,
    connections: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeSmtp {
    async fn start(refuse_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().unwrap().port();
        let (sender, received) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let sender = sender.clone();
                tokio::spawn(async move {
                    // A session that stalls is dropped rather than left hanging.
                    let _ = timeout(STEP, session(stream, n < refuse_first, sender)).await;
                });
            }
        });
        Self {
            port,
            received,
            connections,
            server,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next accepted message, or a failure after [`STEP`].
    async fn next_message(&mut self) -> Received {
        timeout(STEP, self.received.recv())
            .await
            .expect("a message reaches the SMTP server in time")
            .expect("the SMTP server is running")
    }
}

async fn session(
    stream: TcpStream,
    refuse: bool,
    sender: mpsc::UnboundedSender<Received>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if refuse {
        write
            .write_all(b"421 fake.smtp busy, try again later\r\n")
            .await?;
        return write.shutdown().await;
    }
    write.write_all(b"220 fake.smtp ESMTP ready\r\n").await?;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 fake.smtp greets you\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = angle_address(&command["MAIL FROM:".len()..]);
            rcpt_to.clear();
            b"250 2.1.0 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            rcpt_to.push(angle_address(&command["RCPT TO:".len()..]));
            b"250 2.1.5 OK\r\n"
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                // Dot-stuffing: a leading dot was doubled by the client.
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let _ = sender.send(Received {
                mail_from: mail_from.clone(),
                rcpt_to: rcpt_to.clone(),
                data,
            });
            b"250 2.0.0 OK queued\r\n"
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 2.0.0 OK\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return write.shutdown().await;
        } else {
            b"502 5.5.2 Command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// Registers `email` and returns the verification mail the SMTP server received.
async fn register_and_receive(app: &TestApp, smtp: &mut FakeSmtp, email: &str) -> Received {
    timeout(
        STEP,
        app.auth().register(pb::RegisterRequest {
            email: email.into(),
            password: PASSWORD.into(),
            referral_code: String::new(),
        }),
    )
    .await
    .expect("Register answers in time")
    .expect("register");
    smtp.next_message().await
}

#[tokio::test]
async fn register_delivers_the_verification_mail_over_smtp() {
    let mut smtp = FakeSmtp::start(0).await;
    let url = smtp.url();
    let app = spawn_app_with(&[
        ("SMTP_URL", url.as_str()),
        ("NAMASKAH_MAIL_FROM", "Namaskah <no-reply@namaskah.test>"),
    ])
    .await;
    let email = unique_email();
    let message = register_and_receive(&app, &mut smtp, &email).await;

    assert_eq!(message.rcpt_to, [email.as_str()], "{message:?}");
    assert_eq!(message.mail_from, "no-reply@namaskah.test");
    let to = message.header("To").expect("a To header");
    assert!(to.contains(&email), "To: {to}");
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("Confirm your email address")
    );
    let text = message.text();
    assert!(text.contains("/verify-email?token="), "{text}");
    let token = token_in(&text);
    assert_eq!(
        token.len(),
        43,
        "the whole token survived the transfer: {text}"
    );

    // The token from the SMTP mail verifies the address.
    let user = timeout(
        STEP,
        app.auth().verify_email(pb::VerifyEmailRequest {
            token: token.clone(),
        }),
    )
    .await
    .expect("VerifyEmail answers in time")
    .expect("the mailed token verifies")
    .into_inner()
    .user
    .unwrap();
    assert!(user.email_verified);
    assert_eq!(user.email, email);
    let status = app
        .auth()
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .expect_err("single use");
    assert_error(&status, tonic::Code::InvalidArgument, "TOKEN_ALREADY_USED");

    // With SMTP configured nothing goes to the sink, and no stray mail follows.
    assert!(app.mails().is_empty(), "sink: {:?}", app.mails());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(smtp.received.try_recv().is_err(), "exactly one mail");
}

#[tokio::test]
async fn password_reset_mail_goes_over_smtp_too() {
    let mut smtp = FakeSmtp::start(0).await;
    let url = smtp.url();
    let app = spawn_app_with(&[("SMTP_URL", url.as_str())]).await;
    let email = unique_email();
    register_and_receive(&app, &mut smtp, &email).await;
    timeout(
        STEP,
        app.auth()
            .request_password_reset(pb::RequestPasswordResetRequest {
                email: email.clone(),
            }),
    )
    .await
    .expect("in time")
    .expect("request reset");
    let message = smtp.next_message().await;
    assert_eq!(message.rcpt_to, [email.as_str()]);
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("Reset your password")
    );
    let token = token_in(&message.text());
    timeout(
        STEP,
        app.auth().reset_password(pb::ResetPasswordRequest {
            token,
            new_password: "a brand new passphrase 7".into(),
        }),
    )
    .await
    .expect("in time")
    .expect("the mailed reset token works");
    app.auth()
        .login(pb::LoginRequest {
            email,
            password: "a brand new passphrase 7".into(),
            totp_code: String::new(),
        })
        .await
        .expect("the new password logs in");
}

#[tokio::test]
async fn a_busy_smtp_server_gets_the_mail_on_a_retry() {
    // The first connection is turned away with 421; the mail is sent again shortly after.
    let mut smtp = FakeSmtp::start(1).await;
    let url = smtp.url();
    let app = spawn_app_with(&[("SMTP_URL", url.as_str())]).await;
    let email = unique_email();
    let message = register_and_receive(&app, &mut smtp, &email).await;
    assert_eq!(message.rcpt_to, [email.as_str()]);
    assert!(
        smtp.connections.load(Ordering::SeqCst) >= 2,
        "the mail arrived on a second connection"
    );
    let token = token_in(&message.text());
    app.auth()
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .expect("the retried mail's token works");
}
