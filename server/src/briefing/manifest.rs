//! Each briefing file is signed: beside `F` go `F.manifest.json` — the
//! file's SHA-256 and size, the heads of every document it was built from,
//! and for an Office file (a ZIP) the SHA-256 of each part — and `F.sig`,
//! HQ's Ed25519 signature over the manifest's bytes (domain
//! `fieldsync/briefing/v1`, hex). [`verify`] checks both and, when the file
//! was changed, names the parts that were.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sync_core::identity::DevicePublicKey;
use sync_core::ids::sha256_hex;

use super::Sources;
use crate::register::{BRIEFING_DOMAIN, Hq};

/// What a briefing file was built from, and what it holds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// The file's name.
    pub(crate) file: String,
    pub(crate) sha256: String,
    pub(crate) size: u64,
    pub(crate) campaign: String,
    /// HQ's key, which signed it (hex).
    pub(crate) hq: String,
    /// Each document's heads (hex), by id.
    pub(crate) documents: BTreeMap<String, Vec<String>>,
    /// For a ZIP (an Office file): each part's SHA-256, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) parts: BTreeMap<String, String>,
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes `bytes` to `path`, then its manifest and HQ's signature beside it,
/// each by a rename, so a crash never leaves half a file.
pub(crate) fn write_signed(path: &Path, bytes: &[u8], sources: &Sources, hq: &Hq) -> Result<()> {
    let manifest = Manifest {
        file: path.file_name().unwrap_or_default().to_string_lossy().into_owned(),
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
        campaign: sources.campaign.id.to_string(),
        hq: hq.public_key().to_string(),
        documents: sources.heads.clone(),
        parts: parts(bytes).unwrap_or_default(),
    };
    let mut text = serde_json::to_vec_pretty(&manifest)?;
    text.push(b'\n');
    let signature = hq.sign_briefing(&text);
    atomically(path, bytes)?;
    atomically(&beside(path, ".manifest.json"), &text)?;
    atomically(&beside(path, ".sig"), format!("{}\n", hex::encode(signature)).as_bytes())
}

fn atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = beside(path, ".part");
    std::fs::write(&partial, bytes).with_context(|| format!("无法写入 {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("无法写入 {}", path.display()))
}

/// Each part of a ZIP with its SHA-256; `None` if `bytes` is not a ZIP.
fn parts(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).ok()?;
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).ok()?;
        let mut content = Vec::new();
        entry.read_to_end(&mut content).ok()?;
        out.insert(entry.name().ok()?.into_owned(), sha256_hex(&content));
    }
    Some(out)
}

/// Why a file did not verify, in Chinese.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failed {
    #[error("找不到签名清单 {0}：这个文件不是总部生成的通报材料，或清单没有一起复制过来")]
    NoManifest(String),
    #[error("签名清单无法读取：{0}")]
    BadManifest(String),
    #[error("清单由另一把总部密钥签名（{0}），不是本总部")]
    OtherHq(String),
    #[error("签名无效：清单在签名后被改动过，或签名文件不属于它")]
    BadSignature,
    #[error("文件在签名后被改动过：{0}")]
    Changed(String),
}

/// Checks `file` against its manifest and signature, trusting HQ key
/// `hq`. Returns the manifest.
pub(crate) fn verify(file: &Path, hq: &DevicePublicKey) -> Result<Manifest, Failed> {
    let manifest_path = beside(file, ".manifest.json");
    let text = std::fs::read(&manifest_path).map_err(|_| Failed::NoManifest(manifest_path.display().to_string()))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| Failed::BadManifest(e.to_string()))?;
    if manifest.hq != hq.to_string() {
        return Err(Failed::OtherHq(manifest.hq));
    }
    let sig_path = beside(file, ".sig");
    let signature = std::fs::read_to_string(&sig_path)
        .ok()
        .and_then(|s| hex::decode(s.trim()).ok())
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or(Failed::BadSignature)?;
    hq.verify_with_domain(BRIEFING_DOMAIN, &text, &signature).map_err(|_| Failed::BadSignature)?;
    let bytes = std::fs::read(file).map_err(|e| Failed::Changed(format!("无法读取文件：{e}")))?;
    if sha256_hex(&bytes) == manifest.sha256 {
        return Ok(manifest);
    }
    let Some(now) = parts(&bytes).filter(|_| !manifest.parts.is_empty()) else {
        return Err(Failed::Changed(format!("SHA-256 应为 {}，现为 {}", manifest.sha256, sha256_hex(&bytes))));
    };
    let mut changed = Vec::new();
    for (name, sha) in &manifest.parts {
        match now.get(name) {
            None => changed.push(format!("{}（被删除）", part_name(name))),
            Some(other) if other != sha => changed.push(format!("{}（内容被改动）", part_name(name))),
            Some(_) => {}
        }
    }
    changed
        .extend(now.keys().filter(|n| !manifest.parts.contains_key(*n)).map(|n| format!("{}（新加入）", part_name(n))));
    if changed.is_empty() {
        changed.push("文件的打包方式（各部分内容未变）".into());
    }
    Err(Failed::Changed(changed.join("；")))
}

/// A part as a person reads it: 第 5 页幻灯片, else its name.
fn part_name(name: &str) -> String {
    let numbered = |prefix: &str, suffix: &str| name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse::<u32>().ok();
    if let Some(n) = numbered("ppt/slides/slide", ".xml") {
        return format!("第 {n} 页幻灯片");
    }
    if let Some(n) = numbered("ppt/notesSlides/notesSlide", ".xml") {
        return format!("第 {n} 页的备注");
    }
    if let Some(n) = numbered("ppt/charts/chart", ".xml") {
        return format!("第 {n} 个图表");
    }
    if name.starts_with("ppt/media/") {
        return format!("照片 {name}");
    }
    if name == "word/document.xml" {
        return "正文".into();
    }
    name.to_owned()
}
