//! HQ's own edits: a change HQ's console makes for a signed-in person (a
//! conflict decided). It is signed by the console's own device key — a key
//! with an hq-role credential in the register, never HQ's key — and its
//! message names the person's account. It is taken in as a device's work
//! would be: checked (`sync_core::sync::decide::accept`, the console's
//! credential judged now and against the revocation list), stored with a
//! receipt, projected, and sent on to every device in scope by their next
//! sync.

use sync_core::automerge::transaction::Transaction;
use sync_core::doc::{self, ModelError};
use sync_core::ids::DocId;
use sync_core::sync::message::Evidence;

use super::replica::{Arriving, HqReplica};

/// Why an edit was not made. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EditError {
    /// HQ holds no such document.
    #[error("总部没有文档 {0}")]
    NotFound(DocId),
    /// The edit itself refused (the rule says why).
    #[error("{0}")]
    Model(#[from] ModelError),
    /// The change would not be taken from a device either.
    #[error("总部不能接收这次修改：{0}")]
    Refused(String),
    /// This server has no console identity (a replica for tests).
    #[error("总部控制台没有设备身份，不能修改文档")]
    NoConsole,
    /// HQ's store failed.
    #[error("总部存储失败：{0}")]
    Failed(String),
}

impl HqReplica {
    /// Runs `f` as one transaction on a copy of document `id` as the
    /// console's device, for `account`; signs the change and stores it like
    /// a device's, once durable. Returns what `f` returned (also when it
    /// wrote nothing). One such edit at a time.
    pub(crate) async fn edit_for<T>(
        &self,
        id: &DocId,
        account: &str,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, ModelError>,
    ) -> Result<T, EditError> {
        let console = self.console().ok_or(EditError::NoConsole)?;
        let _alone = self.deciding.lock().await;
        let mut copy = self.with_store(|s| s.document(id).cloned()).map_err(|e| match e {
            field_client::StoreError::NotFound { .. } => EditError::NotFound(id.clone()),
            e => EditError::Failed(e.to_string()),
        })?;
        let proof = console.proof();
        copy.set_actor(proof.actor_id());
        let now = field_client::now_ms();
        let committed = doc::edit_for(&mut copy, now, account, f)?;
        let Some(hash) = committed.hash else {
            return Ok(committed.value);
        };
        let batch = copy.bundle([hash]).map_err(|e| EditError::Failed(e.to_string()))?.bytes().to_vec();
        let signature = console.key().sign_head(id, &proof, hash);
        let evidence = Evidence { lookup: true, ..Evidence::new(&signature, Vec::new()) };
        let revocations = self.revocations();
        let accepted =
            sync_core::sync::decide::accept(id, &batch, &[evidence], &self.hq_key(), (now, revocations.as_ref()), self)
                .map_err(EditError::Refused)?;
        let Some(accepted) = accepted else {
            return Err(EditError::Failed(format!("{id}: 刚做的修改已在总部")));
        };
        let arriving = Arriving {
            changes: accepted.changes,
            checked: accepted.checked,
            evidence: accepted.evidence,
            batch: None,
            from: console.key().public(),
        };
        if let Err(error) = self.write(id, arriving, None).await {
            console.renew();
            return Err(EditError::Failed(error.to_string()));
        }
        Ok(committed.value)
    }
}
