//! TLS served by the binaries themselves (rustls with ring): the certificate chain and key
//! from `NAMASKAH_TLS_CERT` / `NAMASKAH_TLS_KEY`, read and checked once at start-up, so a
//! missing, unreadable or mismatched file stops start-up with a message naming the variable.
//!
//! Handshakes run in tasks of their own (a slow or silent client never holds up the
//! others) and each accepted connection keeps its TCP peer address, so per-address limits
//! and `x-forwarded-for` work as they do without TLS.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use crate::config::ConfigError;
use crate::{EdgeOptions, router};

/// The PEM file with the certificate chain (the server's certificate first).
pub const ENV_TLS_CERT: &str = "NAMASKAH_TLS_CERT";
/// The PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
pub const ENV_TLS_KEY: &str = "NAMASKAH_TLS_KEY";

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections whose handshake finished, waiting to be served.
const ACCEPT_BACKLOG: usize = 256;

/// A certificate chain and its key, read and checked (the key matches the certificate).
#[derive(Clone)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// The ring provider: the one crypto provider of this workspace (no aws-lc).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads [`ENV_TLS_CERT`] and [`ENV_TLS_KEY`] through `lookup` (unset or empty means
/// unset): both unset is `None` (plain TCP); one without the other, a file that cannot be
/// read, a file without a PEM certificate or key, or a key that does not belong to the
/// certificate is an error naming the variable.
pub fn tls_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<TlsIdentity>, ConfigError> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let (cert_path, key_path) = match (get(ENV_TLS_CERT), get(ENV_TLS_KEY)) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(cert), None) => {
            return Err(ConfigError::new(
                ENV_TLS_KEY,
                "",
                format!("must be set together with {ENV_TLS_CERT} (={cert})"),
            ));
        }
        (None, Some(key)) => {
            return Err(ConfigError::new(
                ENV_TLS_CERT,
                "",
                format!("must be set together with {ENV_TLS_KEY} (={key})"),
            ));
        }
    };
    let read = |variable: &'static str, path: &str| {
        std::fs::read(path)
            .map_err(|e| ConfigError::new(variable, path, format!("cannot read the file: {e}")))
    };
    let cert_pem = read(ENV_TLS_CERT, &cert_path)?;
    let key_pem = read(ENV_TLS_KEY, &key_path)?;

    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ConfigError::new(
                ENV_TLS_CERT,
                &cert_path,
                format!("not a PEM certificate chain: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(ConfigError::new(
            ENV_TLS_CERT,
            &cert_path,
            "holds no certificate (expected PEM blocks `-----BEGIN CERTIFICATE-----`)",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        ConfigError::new(
            ENV_TLS_KEY,
            &key_path,
            format!("holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    let identity = TlsIdentity {
        chain,
        key: Arc::new(key),
    };
    // rustls parses the key and checks that it belongs to the first certificate.
    identity.server_config(&[]).map_err(|e| {
        ConfigError::new(
            ENV_TLS_KEY,
            &key_path,
            format!("cannot be used with the certificate in {cert_path}: {e}"),
        )
    })?;
    Ok(Some(identity))
}

impl TlsIdentity {
    /// A rustls server configuration offering `alpn` (most preferred first).
    pub fn server_config(
        &self,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// The server's own certificate (the first of the chain).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

/// A TLS connection accepted by [`TlsIncoming`], with the TCP addresses it came in on.
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    local: SocketAddr,
    peer: SocketAddr,
}

impl TlsConnection {
    /// The client's TCP address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// tonic reads the peer from the same `TcpConnectInfo` as on plain TCP, so rate limits by
/// client address and the trusted-proxy rule see the real peer.
impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo {
            local_addr: Some(self.local),
            remote_addr: Some(self.peer),
        }
    }
}

/// Accepts TCP connections and finishes their TLS handshakes in tasks of their own; the
/// connections come out in the order their handshakes finished. Failed or timed-out
/// handshakes are logged at debug level and dropped. Dropping it stops accepting.
pub struct TlsIncoming {
    ready: mpsc::Receiver<TlsConnection>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl TlsIncoming {
    /// Starts accepting on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(ACCEPT_BACKLOG);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let ready = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready
                                .send(TlsConnection {
                                    stream,
                                    local,
                                    peer,
                                })
                                .await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        Ok(Self {
            ready,
            local,
            acceptor,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next connection whose handshake finished (`None` once accepting stopped).
    pub async fn next(&mut self) -> Option<TlsConnection> {
        self.ready.recv().await
    }

    /// As a stream of connections, for `tonic::transport::Server::serve_with_incoming*`.
    pub fn into_stream(self) -> impl futures::Stream<Item = io::Result<TlsConnection>> {
        futures::stream::unfold(self, |mut incoming| async move {
            incoming.next().await.map(|c| (Ok(c), incoming))
        })
    }
}

impl axum::serve::Listener for TlsIncoming {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.next().await {
            Some(connection) => {
                let peer = connection.peer;
                (connection, peer)
            }
            // The acceptor only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// [`crate::serve_with`] over TLS: HTTP/2 and HTTP/1.1 (ALPN) with `identity`.
pub async fn serve_tls_with<F>(
    listener: TcpListener,
    identity: &TlsIdentity,
    upstream: Channel,
    options: EdgeOptions,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    use axum::serve::ListenerExt as _;
    let config = identity
        .server_config(&[b"h2", b"http/1.1"])
        .map_err(io::Error::other)?;
    // `tap_io` only so that axum hands each request the peer address (ConnectInfo).
    let listener = TlsIncoming::new(listener, config)?.tap_io(|_| {});
    let app = router(upstream, options).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A lazily connected channel to a gRPC server at `addr` that serves TLS with exactly
/// `certificate` (the same process's own listener, reached over loopback): the server is
/// trusted because it presents that certificate, whatever names it carries, and the
/// handshake's signatures are checked as usual.
pub fn pinned_channel(addr: SocketAddr, certificate: CertificateDer<'static>) -> Channel {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { certificate }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let endpoint: Endpoint = crate::upstream_endpoint(
        format!("http://{addr}")
            .parse()
            .expect("a socket address is a valid authority"),
    );
    endpoint.connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            // The name is not checked (the certificate is pinned); rustls needs one to send.
            let name = ServerName::try_from("localhost").expect("a valid DNS name");
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    }))
}

/// Accepts exactly one server certificate.
#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
