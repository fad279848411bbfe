//! HQ's sync endpoint: QUIC connections from devices and station relays,
//! each served as one session (`field_client::serve`: documents, then
//! photos) on HQ's replica ([`replica`]). The endpoint reaches HQ's storage
//! only through the session's storage port (`Local`, with `PhotoSide` for
//! photos): another backend is another implementation of those.

mod decide;
mod edit;
mod replica;

use std::sync::{Arc, Mutex, PoisonError};

pub(crate) use decide::{DecideError, Verdict, outcome_label};
pub(crate) use edit::EditError;
use field_client::PhotoSide;
pub(crate) use replica::{Console, Durably, HqReplica};
use sync_core::credential::SignedCredential;
use sync_core::identity::DevicePublicKey;
use sync_core::sync::replica::Local;
use sync_core::sync::session::SessionConfig;

use crate::metrics::Metrics;
use crate::register::{Hq, SessionLog};

/// Sessions served at once; further devices wait, connected, for a turn.
/// A station's fifty tablets are served together: at 32 they went in two
/// waves, and starting the second left the cores idle (`scripts/bench-sync
/// 50`, interleaved runs: burst 1.01 s at 32, 0.93 s at 64, peak RSS 45 and
/// 49 MB). With a thousand tablets at once and no limit, handshakes waited
/// behind the sessions' work past the connect timeout (`scripts/bench-sync
/// 1000`). Bounded this way, so are the documents sessions hold.
const SESSIONS: usize = 64;

/// Accepts connections on `endpoint` until it closes, serving each on
/// `replica` as HQ (`credential`, `hq`). Every session sees the register's
/// newest revocation list.
pub(crate) async fn serve<R>(
    endpoint: quinn::Endpoint,
    replica: R,
    register: Arc<Mutex<Hq>>,
    credential: SignedCredential,
    hq: DevicePublicKey,
    metrics: Arc<Metrics>,
    log: SessionLog,
) where
    R: Local + PhotoSide + Clone + Send + Sync + 'static,
{
    let turns = Arc::new(tokio::sync::Semaphore::new(SESSIONS));
    while let Some(incoming) = endpoint.accept().await {
        let turns = turns.clone();
        let mut replica = replica.clone();
        let credential = credential.clone();
        let register = register.clone();
        let metrics = metrics.clone();
        let log = log.clone();
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else { return };
            let Ok(_turn) = turns.acquire_owned().await else { return };
            let session = metrics.session();
            let counted = connection.clone();
            let peer = field_client::net::peer_key(&connection);
            // The register's SQLite calls stay off the async workers.
            let read = move || register.lock().unwrap_or_else(PoisonError::into_inner).revocations();
            let revocations = match tokio::task::spawn_blocking(read).await {
                Ok(Ok(list)) => list,
                // Without the list a revoked device could pass: refused.
                failed => {
                    tracing::error!(?failed, "revocation list does not read");
                    connection.close(1u32.into(), "总部服务器内部错误，请稍后再同步".as_bytes());
                    return;
                }
            };
            let config = SessionConfig { credential, hq, revocations, peer_key: hq };
            let outcome = field_client::serve(&mut replica, connection, config).await.1;
            let stats = counted.stats();
            let (received, sent) = (stats.udp_rx.bytes, stats.udp_tx.bytes);
            let error = match outcome {
                Ok((summary, _)) => {
                    tracing::info!(received = ?summary.received, "session finished");
                    session.finished(received, sent);
                    None
                }
                Err(error) => {
                    tracing::warn!(%error, "session failed");
                    session.bytes(received, sent);
                    Some(error.to_string())
                }
            };
            // For HQ staff: when each device last synced, and how.
            if let Some(peer) = peer {
                log.ended(peer, field_client::now_ms(), error);
            }
        });
    }
}
