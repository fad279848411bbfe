//! QUIC transport for sync sessions: pinned-key mutual TLS and the driver
//! that runs a sans-IO [`Session`] over one bidirectional stream.
//!
//! Every peer presents a self-signed certificate made from its identity key.
//! A device pins HQ's key (from enrollment): a server with another key fails
//! the handshake. A server accepts any Ed25519 device certificate at the TLS
//! layer and judges the device by its credential in the session's `hello`,
//! where the credential must name the key the TLS handshake authenticated.
//! ALPN names the protocol version (`fieldsync/3`). Used by the `field` CLI
//! and by `fieldsync-server`.

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use sync_core::identity::{DeviceKey, DevicePublicKey};
use sync_core::sync::batch;
use sync_core::sync::message::{FrameReader, Message, Receipt, ReceiptBody};
use sync_core::sync::replica::{Local, PendingWrite};
use sync_core::sync::session::{Effect, Input, Session, Summary, SyncError};

/// How long connecting may take. A live peer on a LAN answers in
/// milliseconds, but HQ in the end-of-day burst completes handshakes behind
/// the sessions it is already serving: with 200 tablets at once 3 s was not
/// enough, with 1,000 not 10 s (`scripts/bench-sync`).
const CONNECT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a session waits for a message from a peer whose connection is
/// alive. A dead link is noticed sooner, by QUIC's idle timeout (keep-alives
/// flow while a peer is up); this is for a peer that is up but silent, which
/// in the end-of-day burst is HQ (or a tablet) busy with a thousand others.
pub(crate) const IDLE: std::time::Duration = std::time::Duration::from_secs(120);

/// How long a session waits for the peer's first message. HQ serves a
/// bounded number of sessions at once and the rest wait, connected, for a
/// turn: in the end-of-day burst a tablet may wait minutes.
const TURN: std::time::Duration = std::time::Duration::from_secs(600);

/// How often an idle connection pings its peer.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(2);

/// ALPN of protocol version 2.
pub const ALPN: &[u8] = b"fieldsync/3";

/// The 12 bytes before the key in an Ed25519 SubjectPublicKeyInfo.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Transport failures, in words an inspector can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// TLS or QUIC setup failed.
    #[error("安全连接配置失败：{0}")]
    Setup(String),
    /// The address to listen on could not be bound.
    #[error("{0}")]
    Listen(String),
    /// The connection failed or broke.
    #[error("无法连接或连接中断：{0}")]
    Connection(String),
    /// The session ended in a typed refusal or error.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The photo exchange after the session was refused.
    #[error(transparent)]
    Photo(#[from] sync_core::sync::photo::PhotoError),
    /// Storing what arrived failed.
    #[error("保存同步数据失败：{0}")]
    Store(String),
}

/// A broken connection, said in Chinese (quinn's own words are English):
/// the reason TLS or the peer gave is kept where it is ours, in Chinese.
pub(crate) fn broken(e: &(dyn std::error::Error + 'static)) -> NetError {
    NetError::Connection(explain(e))
}

fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    use quinn::{ConnectionError, ReadError, ReadExactError, WriteError};
    if let Some(e) = e.downcast_ref::<ConnectionError>() {
        return match e {
            ConnectionError::TimedOut => "对方长时间无响应（网络中断，或对方已关机）".into(),
            ConnectionError::Reset => "对方重置了连接（对方可能刚重启）".into(),
            ConnectionError::LocallyClosed => "连接已在本机关闭".into(),
            ConnectionError::VersionMismatch => "对方不支持本机的 QUIC 协议版本".into(),
            ConnectionError::CidsExhausted => "连接标识已用尽，请重试".into(),
            ConnectionError::ApplicationClosed(close) => format!("对方关闭了连接{}", ours(&close.reason)),
            ConnectionError::ConnectionClosed(close) => format!("对方中止了连接{}", ours(&close.reason)),
            ConnectionError::TransportError(error) => format!("安全握手或传输出错{}", ours(error.reason.as_bytes())),
        };
    }
    if let Some(e) = e.downcast_ref::<ReadError>() {
        return match e {
            ReadError::ConnectionLost(lost) => explain(lost),
            ReadError::Reset(_) => "对方中止了数据传输".into(),
            _ => "数据流已关闭".into(),
        };
    }
    if let Some(e) = e.downcast_ref::<WriteError>() {
        return match e {
            WriteError::ConnectionLost(lost) => explain(lost),
            WriteError::Stopped(_) => "对方停止了接收".into(),
            _ => "数据流已关闭".into(),
        };
    }
    match e.downcast_ref::<ReadExactError>() {
        Some(ReadExactError::ReadError(read)) => explain(read),
        Some(ReadExactError::FinishedEarly(_)) => "对方发送的数据不完整".into(),
        None => {
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(cause) = source {
                text.push('：');
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// `：` and the part of a close or TLS reason from its first Chinese
/// character on (ours: "服务器密钥与绑定的总部密钥不符"), or nothing where it is
/// all quinn's or rustls's English.
fn ours(reason: &[u8]) -> String {
    let reason = String::from_utf8_lossy(reason);
    match reason.char_indices().find(|(_, c)| !c.is_ascii()) {
        Some((at, _)) => format!("：{}", &reason[at..]),
        None => String::new(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificate(key: &DeviceKey) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), NetError> {
    let der = key.pkcs8_der();
    let pkcs8 = PrivatePkcs8KeyDer::from(der);
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
        .map_err(|e| NetError::Setup(e.to_string()))?;
    let params = rcgen::CertificateParams::new(vec!["fieldsync".into()]).map_err(|e| NetError::Setup(e.to_string()))?;
    let cert = params.self_signed(&pair).map_err(|e| NetError::Setup(e.to_string()))?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
}

/// The identity key inside a peer's certificate.
pub fn key_of(cert: &CertificateDer<'_>) -> Option<DevicePublicKey> {
    let bytes = cert.as_ref();
    let at = bytes.windows(ED25519_SPKI_PREFIX.len()).position(|w| w == ED25519_SPKI_PREFIX)?;
    let key = bytes.get(at + 12..at + 44)?;
    DevicePublicKey::from_bytes(key).ok()
}

/// Which server keys a client accepts at the TLS layer.
#[derive(Debug)]
struct PinnedServer {
    /// HQ's pinned key; `None` for a relay or another device, whose
    /// HQ-signed credential in the session's hello must then name the key
    /// TLS authenticated.
    key: Option<DevicePublicKey>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match (key_of(end_entity), self.key) {
            (Some(key), Some(pinned)) if key == pinned => Ok(ServerCertVerified::assertion()),
            (Some(_), None) => Ok(ServerCertVerified::assertion()),
            _ => Err(rustls::Error::General("服务器密钥与绑定的总部密钥不符".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("只支持 TLS 1.3".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct AnyDevice {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyDevice {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        key_of(end_entity)
            .map(|_| ClientCertVerified::assertion())
            .ok_or_else(|| rustls::Error::General("设备证书不是 Ed25519 身份密钥".into()))
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("只支持 TLS 1.3".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Socket buffers of every endpoint. The kernel default (about 200 KB)
/// overflows when fifty tablets sync at once: datagrams are dropped, and
/// QUIC's loss recovery then stretches a one-second burst to many seconds.
const SOCKET_BUFFER: usize = 4 << 20;

/// A QUIC endpoint on a UDP socket bound to `addr`, with large buffers.
fn endpoint(
    addr: SocketAddr,
    config: quinn::EndpointConfig,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let socket = std::net::UdpSocket::bind(addr).map_err(|e| NetError::Listen(cannot_listen(addr, &e)))?;
    let buffers = socket2::SockRef::from(&socket);
    // The kernel caps these at net.core.[rw]mem_max; a smaller buffer only
    // costs speed, so failures are not errors.
    let _ = buffers.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = buffers.set_send_buffer_size(SOCKET_BUFFER);
    let runtime = quinn::default_runtime().ok_or_else(|| setup(&"没有可用的异步运行时"))?;
    quinn::Endpoint::new(config, server, socket, runtime).map_err(|e| setup(&e))
}

/// Why `addr` could not be listened on, in Chinese.
pub fn cannot_listen(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("无法监听 {addr}：端口已被占用（另一个程序正在使用它，也许本程序已在运行）")
        }
        std::io::ErrorKind::AddrNotAvailable => format!("无法监听 {addr}：本机没有这个地址"),
        std::io::ErrorKind::PermissionDenied => format!("无法监听 {addr}：没有权限（1024 以下的端口需要管理员权限）"),
        _ => format!("无法监听 {addr}：{e}"),
    }
}

/// Transport settings, both ends. A keep-alive while waiting (for flow
/// control credit, say) makes a restarted server answer with a stateless
/// reset (see [`endpoint_config`]), so the cut is noticed within seconds.
/// No path-MTU discovery: a sync moves tens of kilobytes, and the padded
/// probes cost more than larger packets save (about a seventh of a
/// device's bytes in `scripts/bench-sync`). Packets stay at QUIC's 1,200
/// bytes, which every path carries.
///
/// The receiver of a sync's bulk acknowledges every eighth packet rather
/// than every other (QUIC's acknowledgement-frequency extension, which
/// both ends speak): acknowledgements were about a twentieth of a
/// device's bytes.
fn transport() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.mtu_discovery_config(None);
    let mut acks = quinn::AckFrequencyConfig::default();
    acks.ack_eliciting_threshold(quinn::VarInt::from_u32(7));
    transport.ack_frequency_config(Some(acks));
    transport
}

/// A server endpoint's QUIC settings, with its stateless-reset key and its
/// connection-id key derived from its identity key. A restarted server then
/// recognises the connection ids of its previous run and answers them with
/// the reset tokens that run promised, so a peer whose connection died with
/// that run (mid-transfer, say) is told at once instead of waiting out the
/// idle timeout, and resumes on a new connection.
fn endpoint_config(key: &DeviceKey) -> quinn::EndpointConfig {
    use sha2::Digest as _;
    let derived =
        sha2::Sha256::new().chain_update(b"fieldsync/quic-endpoint/v1\0").chain_update(key.to_seed()).finalize();
    let (reset, cid) = derived.split_at(24);
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(cid);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset)));
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    config
}

/// A server endpoint bound to `addr` that presents `key`.
pub fn server_endpoint(key: &DeviceKey, addr: SocketAddr) -> Result<quinn::Endpoint, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let (cert, private) = certificate(key)?;
    let provider = provider();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setup(&e))?
        .with_client_cert_verifier(Arc::new(AnyDevice { provider }))
        .with_single_cert(vec![cert], private)
        .map_err(|e| setup(&e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| setup(&e))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport()));
    // Address-validation tokens would only spare a retry, which this server
    // never asks for: none are sent.
    let mut tokens = quinn::ValidationTokenConfig::default();
    tokens.sent(0);
    server.validation_token_config(tokens);
    endpoint(addr, endpoint_config(key), Some(server))
}

/// Connects to `addr`, presenting `key`. With `pinned`, the server must hold
/// that key (HQ); without, any identity key passes TLS and the session
/// judges the peer's credential. Keep the endpoint until the connection is
/// closed and idle.
pub async fn connect(
    key: &DeviceKey,
    pinned: Option<DevicePublicKey>,
    addr: SocketAddr,
) -> Result<(quinn::Endpoint, quinn::Connection), NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let (cert, private) = certificate(key)?;
    let provider = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setup(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer { key: pinned, provider }))
        .with_client_auth_cert(vec![cert], private)
        .map_err(|e| setup(&e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| setup(&e))?;
    let bind: SocketAddr = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().map_err(|e| setup(&e))?;
    let mut endpoint = endpoint(bind, quinn::EndpointConfig::default(), None)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport()));
    endpoint.set_default_client_config(config);
    let connecting = endpoint.connect(addr, "fieldsync").map_err(|e| NetError::Connection(e.to_string()))?;
    let connected = tokio::time::timeout(CONNECT, connecting);
    let connection = tokio::select! {
        connected = connected => connected
            .map_err(|_| NetError::Connection(format!("{addr} 没有应答（对方未开机或网络不通）")))?
            .map_err(|e| broken(&e))?,
        refusal = said_no(addr) => return Err(NetError::Connection(refusal)),
    };
    Ok((endpoint, connection))
}

/// Why the network already said no to `addr`, if it does: nothing listens
/// there (the peer's system answers a datagram with "port unreachable",
/// which a connected UDP socket reports) or there is no route to it. Runs
/// beside the handshake, so a peer that is there costs nothing; without
/// such an answer it never ends, and the handshake's own timeout holds.
async fn said_no(addr: SocketAddr) -> String {
    let probe = async {
        let bind: SocketAddr = if addr.is_ipv6() { ([0u16; 8], 0).into() } else { ([0u8; 4], 0).into() };
        let socket = tokio::net::UdpSocket::bind(bind).await?;
        socket.connect(addr).await?;
        // An empty datagram: a QUIC endpoint drops it unread.
        socket.send(&[]).await?;
        let mut buf = [0u8; 1];
        loop {
            socket.recv(&mut buf).await?;
        }
    };
    let error: std::io::Error = match probe.await {
        Ok(never) => never,
        Err(error) => error,
    };
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("{addr} 上没有同步服务在运行（对方拒绝连接，请确认地址和端口，或对方程序是否已启动）")
        }
        std::io::ErrorKind::NetworkUnreachable | std::io::ErrorKind::HostUnreachable => {
            format!("网络不通，无法到达 {addr}（请检查网络连接）")
        }
        _ => std::future::pending().await,
    }
}

/// The peer's identity key, as its certificate proved it.
pub fn peer_key(connection: &quinn::Connection) -> Option<DevicePublicKey> {
    let identity = connection.peer_identity()?;
    let certs = identity.downcast_ref::<Vec<CertificateDer<'static>>>()?;
    key_of(certs.first()?)
}

/// Runs `session` to its end over one stream pair. Writes overlap with
/// receiving: the next document arrives while the last one is committed.
/// Receipts are kept until the session ends and written with its
/// checkpoints (one commit, not one per document); a session that fails
/// still stores those that arrived.
pub async fn drive(
    local: &mut impl Local,
    session: &mut Session,
    peer: DevicePublicKey,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<Summary, NetError> {
    let mut receipts = Vec::new();
    let result = run(local, session, peer, send, recv, &mut receipts).await;
    if result.is_err() && !receipts.is_empty() {
        local.store_receipts(receipts).map_err(store)?;
    }
    result
}

async fn run(
    local: &mut impl Local,
    session: &mut Session,
    peer: DevicePublicKey,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    receipts: &mut Vec<(ReceiptBody, Receipt)>,
) -> Result<Summary, NetError> {
    let mut reader = FrameReader::default();
    // Messages go to the session in the order they came; a `changes`
    // message decodes meanwhile (`arrival`).
    let mut arrivals: std::collections::VecDeque<Arrival> = std::collections::VecDeque::new();
    let mut unreadable = false;
    let mut inputs = vec![Input::Start];
    let mut buf = vec![0u8; 64 * 1024];
    let mut heard = false;
    let mut writes: std::collections::VecDeque<(u64, PendingWrite)> = std::collections::VecDeque::new();
    let ahead = local.decode_ahead();
    loop {
        // What has arrived starts decoding before the session handles the
        // next input, so it decodes meanwhile.
        while arrivals.len() < AHEAD && !unreadable {
            match reader.next_message() {
                Ok(Some(message)) => {
                    tracing::debug!(?message, "received");
                    arrivals.push_back(arrival(message, ahead));
                }
                Ok(None) => match read_ready(recv, &mut buf).await {
                    Some(n) => {
                        heard = true;
                        reader.push(&buf[..n]);
                    }
                    None => break,
                },
                // The session refuses the peer, so it learns why, and closes.
                Err(e) => {
                    arrivals.push_back(Box::pin(std::future::ready(Ok(Input::BadFrame(e)))));
                    unreadable = true;
                }
            }
        }
        while let Some(input) = inputs.pop() {
            let now = crate::now_ms();
            for effect in session.handle(now, &*local, input) {
                match effect {
                    Effect::Send(message) => {
                        tracing::debug!(?message, "send");
                        send.write_all(&message.to_frame()).await.map_err(|e| broken(&e))?;
                    }
                    // After the sends before it: the peer works on them
                    // while this side loads the document (the last effect).
                    Effect::Load { doc, whole } => {
                        local.load(&doc, whole.then_some(&peer)).map_err(store)?;
                        inputs.push(Input::Loaded(doc));
                    }
                    Effect::Persist { token, doc, changes, checked, evidence, batch } => {
                        writes.push_back((token, local.persist(&doc, changes, *checked, evidence, batch, &peer)));
                    }
                    Effect::StoreReceipts(arrived) => receipts.extend(arrived),
                    Effect::StoreRevocations(list) => local.store_revocations(list).map_err(store)?,
                    Effect::Quarantine(aside) => {
                        tracing::warn!(doc = %aside.doc, reason = %aside.reason, "changes quarantined");
                        local.quarantine(aside, &peer).map_err(store)?;
                    }
                    Effect::Finished(summary) => {
                        let checkpoints = &summary.checkpoints;
                        local.store_finished(std::mem::take(receipts), &peer, checkpoints).await.map_err(store)?;
                        // Close our side, then wait for the peer to close its
                        // side: both last `Done`s are then delivered, and only
                        // after that may either end drop the connection.
                        let _ = send.finish();
                        let drain = async { while let Ok(Some(_)) = recv.read(&mut buf).await {} };
                        let _ = tokio::time::timeout(IDLE, drain).await;
                        return Ok(summary);
                    }
                    Effect::Close(error) => {
                        // Let the refusal reach the peer before anyone closes,
                        // so it can tell its user why.
                        let _ = send.finish();
                        let drain = async { while let Ok(Some(_)) = recv.read(&mut buf).await {} };
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
                        return Err(error.into());
                    }
                }
            }
        }
        tokio::select! {
            biased;
            written = async { writes.front_mut().expect("guarded").1.as_mut().await }, if !writes.is_empty() => {
                let (token, _) = writes.pop_front().expect("guarded");
                inputs.push(match written {
                    Ok(receipt) => Input::Persisted { token, receipt },
                    Err(error) => Input::PersistFailed { token, reason: error.to_string() },
                });
            }
            input = async { arrivals.front_mut().expect("guarded").as_mut().await }, if !arrivals.is_empty() => {
                arrivals.pop_front();
                inputs.push(input?);
            }
            read = tokio::time::timeout(if heard { IDLE } else { TURN }, recv.read(&mut buf)),
                if arrivals.len() < AHEAD && !unreadable => match read {
                Ok(Ok(Some(n))) => {
                    heard = true;
                    reader.push(&buf[..n]);
                }
                Ok(Ok(None)) => return Err(NetError::Connection("对方关闭了连接".into())),
                Ok(Err(e)) => return Err(broken(&e)),
                Err(_) => return Err(NetError::Connection("对方长时间无响应".into())),
            },
            else => return Err(NetError::Connection("数据帧无法解析".into())),
        }
    }
}

fn store(error: sync_core::sync::replica::StorageError) -> NetError {
    NetError::Store(error.to_string())
}

/// How many received messages a session holds ahead of the one it is
/// handling: the next documents decode while this one is checked and stored.
const AHEAD: usize = 2;

/// A received message on its way to the session, in the order it came.
type Arrival = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Input, NetError>> + Send>>;

/// Bytes that have arrived on `recv`, read without waiting for more:
/// `None` if none have (or the stream ended or failed, which the next
/// waiting read reports).
async fn read_ready(recv: &mut quinn::RecvStream, buf: &mut [u8]) -> Option<usize> {
    use std::future::Future;
    let mut read = std::pin::pin!(recv.read(buf));
    std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
        std::task::Poll::Ready(Ok(Some(n))) => std::task::Poll::Ready(Some(n)),
        _ => std::task::Poll::Ready(None),
    })
    .await
}

/// With `ahead`, a `changes` message starts decoding at once, on another
/// thread (Automerge loading a document is most of receiving it); any
/// other message is ready as it is.
fn arrival(message: Message, ahead: bool) -> Arrival {
    let Message::Changes { n, doc, batch, evidence } = message else {
        return Box::pin(std::future::ready(Ok(Input::Message(message))));
    };
    if !ahead {
        return Box::pin(std::future::ready(Ok(Input::Message(Message::Changes { n, doc, batch, evidence }))));
    }
    // Started at once on any runtime (the `field` CLI runs on one thread):
    // it does not wait for this task to be polled again.
    let task = tokio::task::spawn_blocking(move || {
        let arrived = batch::decode(&batch);
        Input::Decoded(Message::Changes { n, doc, batch, evidence }, arrived)
    });
    Box::pin(async move { task.await.map_err(|_| NetError::Store("解码收到的修改时内部出错".into())) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(reason: &str) -> quinn::ConnectionError {
        let close =
            quinn::ApplicationClose { error_code: quinn::VarInt::from_u32(0), reason: reason.to_owned().into() };
        quinn::ConnectionError::ApplicationClosed(close)
    }

    #[test]
    fn quinn_errors_are_told_in_chinese() {
        let lost = quinn::ReadError::ConnectionLost(quinn::ConnectionError::TimedOut);
        assert_eq!(explain(&lost), "对方长时间无响应（网络中断，或对方已关机）");
        let write = quinn::WriteError::ConnectionLost(quinn::ConnectionError::Reset);
        assert_eq!(explain(&write), "对方重置了连接（对方可能刚重启）");
        assert_eq!(explain(&closed("done")), "对方关闭了连接");
        assert_eq!(explain(&closed("unexpected error: 服务器正在关闭")), "对方关闭了连接：服务器正在关闭");
        let early = quinn::ReadExactError::FinishedEarly(3);
        assert_eq!(explain(&early), "对方发送的数据不完整");
    }

    #[test]
    fn listening_failures_are_told_in_chinese() {
        let addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let taken = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        assert!(cannot_listen(addr, &taken).contains("端口已被占用"));
    }
}
