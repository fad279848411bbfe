//! A person's decision on work HQ kept aside (its quarantine). Accepted:
//! judged to be from before its author's revocation, it is checked again
//! (`sync_core::sync::decide`) and stored with HQ's receipt to the device
//! that delivered it, so it flows on to everyone in scope like any work HQ
//! holds, and the carrier learns of it from that receipt. Rejected: never
//! stored, and a carrier that sends it again is told it was rejected.

use sync_core::identity::DevicePublicKey;
use sync_core::text::{self, Kind};

use super::replica::{Arriving, HqReplica};

/// What a person decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Take the work: it was made before its author's revocation.
    Accept,
    /// Never take it.
    Reject,
}

/// Why a decision was not recorded. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecideError {
    /// No such row.
    #[error("没有编号为 {0} 的隔离记录")]
    NotFound(i64),
    /// Someone decided it already.
    #[error("隔离记录 #{id} 已于 {at} 由 {by} 决定：{outcome}")]
    Decided { id: i64, outcome: &'static str, by: String, at: String },
    /// The name or the note breaks the text rules.
    #[error("{0}")]
    Form(String),
    /// The work cannot be taken, whatever a person decides.
    #[error("不能接收隔离记录 #{id}：{reason}")]
    Refused { id: i64, reason: String },
    /// HQ's store failed.
    #[error("总部存储失败：{0}")]
    Failed(String),
}

/// The Chinese name of a stored outcome.
pub(crate) fn outcome_label(outcome: &str) -> &'static str {
    match outcome {
        "accepted" => "已接收（认定为吊销前的工作）",
        "rejected" => "已拒收",
        "stored" => "已正常收到（无需决定）",
        _ => "未知",
    }
}

impl HqReplica {
    /// Records `by`'s decision on quarantine row `id`, with `note` (why).
    /// Returns the outcome stored: `accepted`, `rejected`, or `stored` when
    /// accepted work turns out to be held already.
    pub(crate) async fn decide(
        &self,
        id: i64,
        verdict: Verdict,
        by: &str,
        note: &str,
    ) -> Result<&'static str, DecideError> {
        let (by, note) = (text::normalize(by.trim()), text::normalize(note.trim()));
        form(&by, &note)?;
        let failed = |e: field_client::StoreError| DecideError::Failed(e.to_string());
        let _alone = self.deciding.lock().await;
        let entry = self.with_store(|s| s.aside(id)).map_err(failed)?.ok_or(DecideError::NotFound(id))?;
        if let Some(decision) = &entry.listed.decision {
            return Err(DecideError::Decided {
                id,
                outcome: outcome_label(&decision.outcome),
                by: decision.by.clone(),
                at: sync_core::doc::rfc3339(decision.at),
            });
        }
        let now = field_client::now_ms();
        if verdict == Verdict::Reject {
            self.with_store(|s| s.decide_aside(id, "rejected", &by, &note, now)).map_err(failed)?;
            return Ok("rejected");
        }
        let refused = |reason: String| DecideError::Refused { id, reason };
        let evidence = entry.evidence.ok_or_else(|| refused("这条记录由旧版本保存，没有完整的签名证据".into()))?;
        let from: DevicePublicKey = entry.listed.source.parse().map_err(|_| refused("送来设备的公钥无效".into()))?;
        let hq = self.hq_key();
        let at = entry.listed.received_at;
        let accepted = sync_core::sync::decide::accept(&entry.doc, &entry.batch, &evidence, &hq, (at, None), self)
            .map_err(refused)?;
        let Some(accepted) = accepted else {
            self.with_store(|s| s.decide_aside(id, "stored", &by, &note, now)).map_err(failed)?;
            return Ok("stored");
        };
        let arriving = Arriving {
            changes: accepted.changes,
            checked: accepted.checked,
            evidence: accepted.evidence,
            batch: None,
            from,
        };
        self.write(&entry.doc, arriving, Some((id, &by, &note)))
            .await
            .map_err(|e| DecideError::Failed(e.to_string()))?;
        Ok("accepted")
    }
}

/// Who decides is a name (a line); why is a text, and must be given.
fn form(by: &str, note: &str) -> Result<(), DecideError> {
    let bad = |what: &str, why: String| Err(DecideError::Form(format!("{what}{why}")));
    if by.is_empty() {
        return bad("决定人", "不能为空".into());
    }
    if by.chars().count() > 200 {
        return bad("决定人", "不能超过 200 个字符".into());
    }
    if note.is_empty() {
        return bad("决定理由", "不能为空".into());
    }
    if note.chars().count() > 5000 {
        return bad("决定理由", "不能超过 5000 个字符".into());
    }
    text::check(by, Kind::Line).or_else(|e| bad("决定人", e.to_string()))?;
    text::check(note, Kind::Text).or_else(|e| bad("决定理由", e.to_string()))
}
