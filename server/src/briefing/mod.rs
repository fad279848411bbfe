//! The briefing training meeting (通报培训会) at HQ: the deck, built from
//! the merged documents HQ holds (`sync_core::deck` says what it shows),
//! written as an editable .pptx ([`pptx`]) and as one self-contained HTML
//! file ([`html`]); and a rectification notice (整改通知书) per enterprise
//! as .docx ([`docx`]), with a ZIP of them all. Each file is signed with a
//! manifest ([`manifest`]).
//!
//! Everything is read from disk on read-only connections of its own (the
//! store's documents and signatures, the register's names, the photo
//! copies), so a briefing is made beside a running server without touching
//! its sessions. The same documents give the same bytes.

pub(crate) mod docx;
pub(crate) mod html;
pub(crate) mod manifest;
pub(crate) mod pptx;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use field_client::{Store, stored_document, stored_signers};
use sync_core::automerge::Automerge;
use sync_core::deck::{self, Deck};
use sync_core::doc;
use sync_core::ids::{DocId, DocKind, PhotoId};
use sync_core::knowledge::Knowledge;
use sync_core::model::{Briefing, Campaign, Dossier};

use crate::photos::{Copies, Size};

/// What a deck is built from, read from HQ's store.
pub(crate) struct Sources {
    pub(crate) campaign: Campaign,
    pub(crate) dossiers: Vec<Dossier>,
    pub(crate) briefing: Briefing,
    sections: BTreeMap<String, String>,
    basis: Vec<String>,
    signers: BTreeMap<String, Vec<(String, String)>>,
    viewable: BTreeSet<String>,
    /// The heads of every document read, by id (hex).
    pub(crate) heads: BTreeMap<String, Vec<String>>,
}

/// Reads campaign `id` and its documents from HQ's data directory `data`.
pub(crate) fn gather(data: &Path, id: &DocId) -> Result<Sources> {
    if id.kind() != DocKind::Campaign {
        anyhow::bail!("{id} 不是检查活动编号（应以 cmp- 开头）");
    }
    let home = data.join("sync");
    let mut heads = BTreeMap::new();
    let mut read = |id: &DocId| -> Result<Option<Automerge>> {
        let doc = stored_document(&home, id).with_context(|| format!("无法读取文档 {id}"))?;
        if let Some(doc) = &doc {
            heads.insert(id.to_string(), doc.get_heads().iter().map(|h| h.to_string()).collect());
        }
        Ok(doc)
    };
    let campaign_doc = read(id)?.ok_or_else(|| anyhow!("总部没有检查活动 {id}"))?;
    let campaign = doc::campaign::read(&campaign_doc).with_context(|| format!("检查活动 {id} 无法读取"))?;
    let holders = crate::register::holders_at(data)?;
    let (mut dossiers, mut signers, mut photos) = (Vec::new(), BTreeMap::new(), BTreeSet::new());
    for enterprise in campaign.enterprises.values() {
        let Some(stored) = read(&enterprise.dossier_id)? else { continue };
        let dossier =
            doc::dossier::read(&stored).with_context(|| format!("企业档案 {} 无法读取", enterprise.dossier_id))?;
        let proofs = stored_signers(&home, &enterprise.dossier_id)?;
        let actors: BTreeMap<_, _> = proofs.iter().map(|p| (p.actor_id(), p.key)).collect();
        for change in doc::history::hazard_changes(&stored, &[]) {
            let Some(key) = actors.get(&change.actor) else { continue };
            let name = holders.get(&key.to_bytes()).map_or_else(|| "未登记的设备".to_owned(), |h| h.name.clone());
            let entry: &mut Vec<(String, String)> =
                signers.entry(format!("{}/{}", dossier.id, change.hazard)).or_default();
            let signer = (name, key.to_string());
            if !entry.contains(&signer) {
                entry.push(signer);
            }
        }
        photos.extend(dossier.hazards.values().filter(|h| !h.deleted).flat_map(|h| h.photos.keys().cloned()));
        dossiers.push(dossier);
    }
    let briefing = match read(&DocId::briefing(id))? {
        Some(stored) => doc::briefing::read(&stored).context("通报材料文档无法读取")?,
        None => Briefing {
            kind: "briefing".into(),
            schema_version: sync_core::model::SCHEMA_VERSION,
            id: DocId::briefing(id),
            campaign_id: id.clone(),
            sections: BTreeMap::new(),
            picks: BTreeMap::new(),
        },
    };
    let copies = Copies::at(data);
    let viewable = photos.into_iter().filter(|sha| shows(&copies, &home, sha)).collect();
    let (mut sections, mut basis) = (BTreeMap::new(), Vec::new());
    for checklist in Store::checklists()? {
        if !campaign.checklists.is_empty() && !campaign.checklists.contains_key(&checklist.id) {
            continue;
        }
        for (item, entry) in &checklist.items {
            sections.insert(item.clone(), entry.section.clone());
        }
        for b in &checklist.basis {
            if !basis.contains(b) {
                basis.push(b.clone());
            }
        }
    }
    Ok(Sources { campaign, dossiers, briefing, sections, basis, signers, viewable, heads })
}

/// Whether HQ can show photo `sha`: what the photo reader read from it
/// says it decodes, or, not read yet, the original held has the header of a
/// JPEG or PNG image (decoding every photo here would take minutes).
fn shows(copies: &Copies, home: &Path, sha: &str) -> bool {
    let Ok(photo) = sha.parse::<PhotoId>() else { return false };
    if let Some(meta) = copies.meta(&photo) {
        return meta.decodable;
    }
    let Ok(file) = std::fs::File::open(original(home, &photo)) else { return false };
    let Ok(reader) = image::ImageReader::new(std::io::BufReader::new(file)).with_guessed_format() else { return false };
    matches!(reader.format(), Some(image::ImageFormat::Jpeg | image::ImageFormat::Png))
        && reader.into_dimensions().is_ok()
}

/// Where HQ's store keeps the original of `photo`.
fn original(home: &Path, photo: &PhotoId) -> PathBuf {
    let sha = photo.to_string();
    home.join("blobs").join(&sha[..2]).join(&sha)
}

/// The deck of `sources`.
pub(crate) fn deck(sources: &Sources) -> Deck {
    deck::build(&deck::Input {
        campaign: &sources.campaign,
        dossiers: &sources.dossiers,
        briefing: &sources.briefing,
        sections: &sources.sections,
        basis: &sources.basis,
        signers: &sources.signers,
        viewable: &sources.viewable,
        knowledge: Knowledge::bundled(),
    })
}

/// The screen-size copy of photo `sha` for a slide, made now if the photo
/// reader has not made it yet (the same bytes it would make).
fn picture(data: &Path, sha: &str) -> Option<pptx::Picture> {
    let photo: PhotoId = sha.parse().ok()?;
    let copies = Copies::at(data);
    let path = copies.path(&photo, Size::Screen);
    if !path.exists() {
        copies.ensure(&photo, &original(&data.join("sync"), &photo)).ok()?;
    }
    let jpeg = std::fs::read(&path).ok()?;
    let (width, height) = image::ImageReader::with_format(std::io::Cursor::new(&jpeg), image::ImageFormat::Jpeg)
        .into_dimensions()
        .ok()?;
    Some(pptx::Picture { jpeg, width, height })
}

/// Each enterprise's notice, by file name: enterprises in the order of
/// their codes, numbered in that order.
fn notices(sources: &Sources) -> Result<Vec<(String, Vec<u8>)>> {
    let year = sources.campaign.end_date.get(..4).unwrap_or_default();
    let mut out = Vec::with_capacity(sources.dossiers.len());
    for (n, dossier) in sources.dossiers.iter().enumerate() {
        let serial = format!("工伤风险检查整改〔{year}〕{:03}号", n + 1);
        let bytes = docx::notice(&docx::Notice { serial, campaign: &sources.campaign, dossier })?;
        let name = match sources.campaign.enterprises.get(&dossier.enterprise) {
            Some(e) if !e.name.trim().is_empty() => e.name.clone(),
            _ => dossier.enterprise.clone(),
        };
        out.push((format!("{:03}-{}.docx", n + 1, file_name(&name)), bytes));
    }
    Ok(out)
}

/// `name` as a file name on any system: no path separators, reserved or
/// control characters, at most 60 characters.
fn file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        .take(60)
        .collect();
    let cleaned = cleaned.trim().trim_matches('.').to_owned();
    if cleaned.is_empty() { "企业".into() } else { cleaned }
}

/// Makes the screen copies the deck's slides show that the photo reader
/// has not made yet, on every core: a camera's photo takes a few hundred
/// milliseconds to decode and scale. A photo that fails is left to its slide
/// to say so.
fn prepare_pictures(data: &Path, deck: &Deck) {
    let copies = Copies::at(data);
    let missing: Vec<PhotoId> = deck
        .slides
        .iter()
        .filter_map(|s| match &s.body {
            deck::Body::Hazard(t) => t.photo.as_deref()?.parse::<PhotoId>().ok(),
            _ => None,
        })
        .filter(|photo| copies.meta(photo).is_none())
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, usize::from).min(missing.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let home = data.join("sync");
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(photo) = missing.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    if let Err(error) = copies.ensure(photo, &original(&home, photo)) {
                        tracing::warn!(%photo, error = format!("{error:#}"), "photo copy not made for the briefing");
                    }
                }
            });
        }
    });
}

/// What was written.
pub(crate) struct Written {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) slides: usize,
    pub(crate) typical: usize,
}

/// Builds the briefing of campaign `id` from HQ's data directory `data`
/// into directory `out`: the deck, each file with its signed manifest.
pub(crate) fn write(data: &Path, id: &DocId, out: &Path) -> Result<Written> {
    let started = std::time::Instant::now();
    let phase = |name: &str| tracing::info!(phase = name, ms = started.elapsed().as_millis() as u64, "briefing");
    let sources = gather(data, id)?;
    phase("gathered");
    let deck = deck(&sources);
    phase("deck");
    prepare_pictures(data, &deck);
    phase("pictures");
    let photo = |sha: &str| picture(data, sha);
    let pptx = pptx::write(&deck, &photo)?;
    phase("pptx");
    let html = html::write(&deck, &photo)?;
    phase("html");
    std::fs::create_dir_all(out).with_context(|| format!("无法创建目录 {}", out.display()))?;
    let hq = crate::register::Hq::open(data)?;
    let mut files = Vec::new();
    for (name, bytes) in [("通报培训会.pptx", pptx), ("通报培训会.html", html)] {
        let path = out.join(name);
        manifest::write_signed(&path, &bytes, &sources, &hq)?;
        files.push(path);
    }
    phase("signed");
    let notices = notices(&sources)?;
    phase("notices");
    let folder = out.join("整改通知书");
    std::fs::create_dir_all(&folder).with_context(|| format!("无法创建目录 {}", folder.display()))?;
    for (name, bytes) in &notices {
        let path = folder.join(name);
        manifest::write_signed(&path, bytes, &sources, &hq)?;
        files.push(path);
    }
    let path = out.join("整改通知书.zip");
    manifest::write_signed(&path, &pptx::zip(notices)?, &sources, &hq)?;
    files.push(path);
    phase("written");
    let typical = deck.slides.iter().filter(|s| matches!(s.body, deck::Body::Hazard(_))).count();
    Ok(Written { files, slides: deck.slides.len() + 1, typical })
}
