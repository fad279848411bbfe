//! HQ's Prometheus metrics (`/metrics`, text exposition): sync sessions and
//! the bytes they moved, receipts, how long a durable write waits to be
//! visible in the read model, the quarantine, and HTTP request latency.
//! Counters are updated where the work happens; the quarantine is counted
//! when scraped.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a sync session ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SessionLabels {
    /// `ok` or `failed`.
    outcome: &'static str,
}

/// Which way bytes went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DirectionLabels {
    /// `received` or `sent`.
    direction: &'static str,
}

/// An HTTP request: its route (as routed, never the raw path) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

type Latency = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The metrics one server process keeps.
pub(crate) struct Metrics {
    registry: Registry,
    sessions_active: Gauge,
    sessions: Family<SessionLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    receipts: Counter,
    quarantine_undecided: Gauge,
    requests: Latency,
}

impl Metrics {
    /// Registers every metric; `read_lag` is the read model's own histogram.
    pub(crate) fn new(read_lag: Histogram) -> Self {
        let mut registry = Registry::with_prefix("fieldsync");
        let sessions_active = Gauge::default();
        let sessions = Family::<SessionLabels, Counter>::default();
        let bytes = Family::<DirectionLabels, Counter>::default();
        let receipts = Counter::default();
        let quarantine_undecided = Gauge::default();
        let requests: Latency = Family::new_with_constructor(latency);
        registry.register("sync_sessions_active", "Sync sessions being served now", sessions_active.clone());
        registry.register("sync_sessions", "Sync sessions ended, by outcome", sessions.clone());
        registry.register("sync_bytes", "UDP payload of sync connections, both ways", bytes.clone());
        registry.register("receipts", "Receipts signed for durable writes of synced changes", receipts.clone());
        registry.register(
            "read_model_lag_seconds",
            "From a write being durable to its document being visible in the read model",
            read_lag,
        );
        registry.register(
            "quarantine_undecided",
            "Quarantined batches no one has decided yet",
            quarantine_undecided.clone(),
        );
        registry.register("http_request_duration_seconds", "HTTP requests by route and status", requests.clone());
        Metrics { registry, sessions_active, sessions, bytes, receipts, quarantine_undecided, requests }
    }

    /// A sync session starts; the returned guard ends it.
    pub(crate) fn session(&self) -> SessionGuard<'_> {
        self.sessions_active.inc();
        SessionGuard { metrics: self, outcome: "failed" }
    }

    /// A durable write carried a receipt.
    pub(crate) fn receipt(&self) {
        self.receipts.inc();
    }

    /// The text exposition, with the quarantine counted now.
    pub(crate) fn encode(&self, quarantine_undecided: usize) -> String {
        self.quarantine_undecided.set(i64::try_from(quarantine_undecided).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One sync session being served: counted as failed unless `finished`.
pub(crate) struct SessionGuard<'a> {
    metrics: &'a Metrics,
    outcome: &'static str,
}

impl SessionGuard<'_> {
    /// The session ended well, having moved these bytes.
    pub(crate) fn finished(mut self, received: u64, sent: u64) {
        self.outcome = "ok";
        self.bytes(received, sent);
    }

    /// The bytes a session moved, however it ended.
    pub(crate) fn bytes(&self, received: u64, sent: u64) {
        let family = &self.metrics.bytes;
        family.get_or_create(&DirectionLabels { direction: "received" }).inc_by(received);
        family.get_or_create(&DirectionLabels { direction: "sent" }).inc_by(sent);
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.metrics.sessions_active.dec();
        self.metrics.sessions.get_or_create(&SessionLabels { outcome: self.outcome }).inc();
    }
}

/// Middleware: times each request by its route.
pub(crate) async fn track(State(metrics): State<std::sync::Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = RequestLabels { method, route, status: response.status().as_u16() };
    metrics.requests.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}
