//! FieldSync field client: the offline store an inspector's device keeps,
//! and the library the `field` CLI (and, later, mobile apps) drive.
//!
//! [`Store`] owns the device identity, the documents (Automerge, from
//! `sync-core`), photos and trusted keys, persisted in SQLite on a dedicated
//! thread. [`export`] renders campaigns as JSON and as the hazard register CSV.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod cli;
mod db;
pub mod export;
pub mod files;
pub mod net;
mod photos;
mod store;
mod sync;
pub mod words;

use std::path::PathBuf;

pub use db::{Decision, Quarantined, quarantined};
pub use photos::{Blobs, PhotoProgress, PhotoReport, PhotoSide, PhotosOwed, Progress, blob_path};
pub use store::{ImportReport, RecordRef, ReviewEntry, Store, new_entity_id, stored_document, stored_signers};
pub use sync::{AsideEntry, HeldBack, RelayEvent, Standing, SyncReport, Synced, serve};

/// The starter checklists shipped with the client (`schemas/checklists/`).
pub(crate) const STARTER_CHECKLISTS: &[&str] = &[
    include_str!("../../schemas/checklists/construction-jgj59.json"),
    include_str!("../../schemas/checklists/coal-mine.json"),
    include_str!("../../schemas/checklists/metal-nonmetal-mine.json"),
];

/// Errors from the local store. The messages are shown to inspectors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No store in this directory yet.
    #[error("{0} 中还没有设备数据，请先执行 field init --name 您的姓名")]
    NotInitialized(PathBuf),
    /// `init` on a directory that already has a store.
    #[error("{0} 中已有设备数据，不能重复初始化")]
    AlreadyInitialized(PathBuf),
    /// Another process holds the store.
    #[error("另一个 field 程序正在使用 {0}，请等它结束后再试")]
    Locked(PathBuf),
    /// The store was opened to look only (another process holds it).
    #[error("另一个 field 程序（如安监站中转）正在使用本机数据，现在只能查看，不能修改；请等它结束后再试")]
    ReadOnly,
    /// The store was written by a newer version.
    #[error("本地数据库版本 {found} 比本程序支持的 {supported} 新，请升级 field")]
    NewerStore {
        /// Version found.
        found: usize,
        /// Newest version this build knows.
        supported: usize,
    },
    /// Something named does not exist.
    #[error("未找到{what}：{id}")]
    NotFound {
        /// What, in Chinese.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// Input that is not acceptable; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// A photo file could not be read.
    #[error("无法读取照片 {}：{}", .0.display(), words::io(.1))]
    Photo(PathBuf, std::io::Error),
    /// An edit broke a rule of the model.
    #[error(transparent)]
    Model(#[from] sync_core::doc::ModelError),
    /// A bundle was refused.
    #[error(transparent)]
    Bundle(#[from] sync_core::bundle::BundleError),
    /// A bundle's changes would leave a document invalid.
    #[error("文档 {doc} 导入后无效，已拒绝整个数据包：{reason}")]
    Rejected {
        /// The document.
        doc: String,
        /// Why.
        reason: String,
    },
    /// A credential or enrollment string was refused.
    #[error(transparent)]
    Credential(#[from] sync_core::credential::CredentialError),
    /// An id did not parse.
    #[error(transparent)]
    Id(#[from] sync_core::ids::IdError),
    /// Stored data does not read back.
    #[error("本地数据损坏：{0}")]
    Corrupt(String),
    /// SQLite failed.
    #[error("本地数据库错误：{}", words::db(.0))]
    Db(#[from] rusqlite::Error),
    /// A file operation failed.
    #[error("文件操作失败：{}", words::io(.0))]
    Io(std::io::Error),
    /// The store thread stopped.
    #[error("本地数据库线程已停止")]
    StoreThreadGone,
    /// A write failed; the store refuses writes until it is reopened.
    #[error("写入数据库失败，需重新打开数据：{0}")]
    WriteFailed(String),
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
