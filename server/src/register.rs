//! HQ's identity, the register of credentials it issued, revocation lists
//! and the admin token.
//!
//! HQ's Ed25519 key is the root of trust: it is generated on first start in
//! `<data>/hq.key` (owner-only) and its public key is what devices pin at
//! enrollment. Issued credentials are recorded in `<data>/hq.db` (SQLite) so
//! serials are unique and HQ can list and revoke them.
//!
//! Operators ask for credentials and revocations through the CLI or the
//! admin API; both hand over the raw text as an [`IssueForm`] or a
//! [`RevokeForm`], and [`Hq::issue`] / [`Hq::revoke`] parse and check it
//! here, so the two surfaces accept exactly the same requests. A refusal is a
//! [`RequestError`] and writes nothing.
//!
//! The admin API's bearer token lives in `<data>/admin.token` (owner-only);
//! `hq.db` keeps only its SHA-256.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use sync_core::credential::{Credential, Enrollment, RevocationList, Role, Scope, SignedCredential, SignedRevocations};
use sync_core::identity::{DeviceKey, DevicePublicKey};
use sync_core::ids::{CreditCode, DocId, DocKind};

const MIGRATIONS: &[&str] = &[
    include_str!("../../schemas/migrations/server/0001_init.sql"),
    include_str!("../../schemas/migrations/server/0002_revocations.sql"),
    include_str!("../../schemas/migrations/server/0003_admin_tokens.sql"),
    include_str!("../../schemas/migrations/server/0004_device_sessions.sql"),
    include_str!("../../schemas/migrations/server/0005_console.sql"),
];

/// The file next to `hq.key` that holds the admin API's bearer token.
const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Longest display name, in characters.
const MAX_NAME_CHARS: usize = 64;
/// Most campaigns, and most enterprises, one credential may name.
const MAX_SCOPE_ITEMS: usize = 16;
/// Longest sync address written into an enrollment string, in bytes.
const MAX_SERVER_LEN: usize = 255;
/// Longest validity, in days.
const MAX_DAYS: i64 = 3650;
const DAY_MS: i64 = 86_400_000;

/// HQ's data directory: key, credential register, revocation lists, admin token.
pub(crate) struct Hq {
    key: DeviceKey,
    db: Connection,
}

/// A credential request as an operator gives it (CLI flags or API JSON):
/// raw text, parsed by [`Hq::issue`].
pub(crate) struct IssueForm {
    /// The device's public key, 64 hex digits.
    pub(crate) device: String,
    /// The person or station.
    pub(crate) name: String,
    /// `inspector`, `station`, `hq` or `enterprise` (or the Chinese label).
    pub(crate) role: String,
    /// Campaign ids; none means every campaign.
    pub(crate) campaigns: Vec<String>,
    /// Enterprise credit codes; none means every enterprise.
    pub(crate) enterprises: Vec<String>,
    /// Validity in days from now.
    pub(crate) days: i64,
    /// HQ's sync address as devices reach it (`host:port`).
    pub(crate) server: String,
}

/// A revocation request as an operator gives it, parsed by [`Hq::revoke`].
pub(crate) struct RevokeForm {
    /// Credential serials to revoke.
    pub(crate) serials: Vec<u64>,
    /// Device public keys (hex) whose every credential is revoked.
    pub(crate) devices: Vec<String>,
}

/// Why an operator's request is refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// The device key is not 64 hex digits of an Ed25519 public key.
    #[error("设备公钥格式无效（应为 64 位十六进制，即设备上 field whoami 显示的公钥）")]
    DeviceKey,
    /// The name is empty or too long.
    #[error("姓名或站点名称不能为空，且不超过 {MAX_NAME_CHARS} 个字")]
    Name,
    /// The name holds characters that hide or reorder text.
    #[error("姓名或站点名称{0}")]
    NameText(sync_core::text::TextError),
    /// A credential for HQ's own key: it could never be revoked.
    #[error("不能为总部自己的公钥签发设备凭证")]
    HqKey,
    /// Not one of the four roles.
    #[error("角色无效：{0}。可选值：inspector（检查员）、station（安监站）、hq（总部）、enterprise（企业）")]
    Role(String),
    /// Not a campaign id.
    #[error("检查活动编号无效：{0}")]
    Campaign(String),
    /// Not a unified social credit code.
    #[error("统一社会信用代码无效：{0}（应为 18 位）")]
    Enterprise(String),
    /// More campaigns or enterprises than fit an enrollment string.
    #[error("检查活动和企业各最多 {MAX_SCOPE_ITEMS} 个（入网码要能放进二维码）")]
    ScopeTooLarge,
    /// An enterprise credential must name the enterprise.
    #[error("企业凭证必须限定到该企业（指定统一社会信用代码）")]
    EnterpriseScope,
    /// Validity outside 1..=3650 days.
    #[error("有效天数必须在 1 到 {MAX_DAYS} 之间：{0}")]
    Days(i64),
    /// The sync address is not `host:port`.
    #[error("同步地址无效（应为 主机:端口，如 192.0.2.1:4433）：{0}")]
    Server(String),
    /// A revocation names nothing.
    #[error("请指定要吊销的凭证编号或设备公钥")]
    NothingToRevoke,
    /// A revocation names a serial HQ never issued.
    #[error("凭证编号 {0} 不存在")]
    UnknownSerial(u64),
    /// A revocation names HQ's own key or credential: every peer would then
    /// refuse HQ itself.
    #[error("不能吊销总部自己的密钥或凭证")]
    RevokesHq,
    /// A revocation names a device HQ never issued a credential to (its key, hex).
    #[error("总部从未给设备 {0} 签发过凭证")]
    UnknownDevice(String),
}

/// Why an operator's request was not carried out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HqError {
    /// The request is invalid; nothing was written.
    #[error(transparent)]
    Refused(#[from] RequestError),
    /// Reading or writing HQ's data failed.
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for HqError {
    fn from(error: rusqlite::Error) -> Self {
        HqError::Storage(error.into())
    }
}

/// How one device's sync session ended.
struct Ended {
    device: DevicePublicKey,
    at: i64,
    error: Option<String>,
}

/// Where sync sessions' ends are recorded: a thread with its own
/// connection to `hq.db` writes them, each batch in one transaction, so a
/// session's end never waits for the write nor takes the register's lock
/// (which every session's start takes). Dropping the last handle lets the
/// thread write what waits, then stop.
#[derive(Clone)]
pub(crate) struct SessionLog {
    queue: mpsc::Sender<Ended>,
}

impl SessionLog {
    /// Starts the writer on `<data>/hq.db` (opened by [`Hq::open`] first).
    pub(crate) fn start(data: &Path) -> Result<Self> {
        let mut db = Connection::open(data.join("hq.db")).context("无法打开总部数据库")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(30))?;
        let (queue, ended) = mpsc::channel::<Ended>();
        std::thread::Builder::new()
            .name("device-sessions".into())
            .spawn(move || {
                while let Ok(first) = ended.recv() {
                    let batch: Vec<Ended> = std::iter::once(first).chain(ended.try_iter()).collect();
                    if let Err(error) = record(&mut db, &batch) {
                        tracing::error!(%error, "device sessions not recorded");
                    }
                }
            })
            .context("无法启动设备同步记录线程")?;
        Ok(SessionLog { queue })
    }

    /// A session of `device` ended at `at`, well or with `error`.
    pub(crate) fn ended(&self, device: DevicePublicKey, at: i64, error: Option<String>) {
        let _ = self.queue.send(Ended { device, at, error });
    }
}

fn record(db: &mut Connection, batch: &[Ended]) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO device_sessions (device, last_at, last_error, sessions, failures)
             VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (device) DO UPDATE SET last_at = ?2, last_error = ?3, sessions = sessions + 1,
                 failures = failures + ?4",
        )?;
        for e in batch {
            let key = e.device.to_bytes().to_vec();
            upsert.execute(rusqlite::params![key, e.at, e.error, i64::from(e.error.is_some())])?;
        }
    }
    tx.commit()
}

/// A device HQ looks after: its newest credential and its sessions.
pub(crate) struct Device {
    pub(crate) credential: Credential,
    /// Whether the newest revocation list covers that credential.
    pub(crate) revoked: bool,
    /// When its last sync session ended (ms), if it ever synced.
    pub(crate) last_at: Option<i64>,
    /// Why that session failed, if it did.
    pub(crate) last_error: Option<String>,
    pub(crate) sessions: i64,
    pub(crate) failures: i64,
}

/// What to put in a new credential: a parsed [`IssueForm`], or HQ's own.
struct Request {
    device: DevicePublicKey,
    name: String,
    role: Role,
    scope: Scope,
    not_before: i64,
    not_after: i64,
}

/// One credential in the register.
pub(crate) struct Entry {
    /// The credential as issued.
    pub(crate) credential: Credential,
    /// When HQ issued it (ms).
    pub(crate) issued_at: i64,
    /// Whether the newest revocation list covers it.
    pub(crate) revoked: bool,
}

/// Parses a role by its identifier or Chinese label.
pub(crate) fn parse_role(s: &str) -> Result<Role, RequestError> {
    Role::parse(s.trim()).ok_or_else(|| RequestError::Role(shown(s.trim())))
}

/// Echoes operator input in an error message, cut short if long.
fn shown(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() > MAX { s.chars().take(MAX).chain(['…']).collect() } else { s.to_owned() }
}

fn parse_device(s: &str) -> Result<DevicePublicKey, RequestError> {
    s.parse().map_err(|_| RequestError::DeviceKey)
}

impl IssueForm {
    /// Checks every field; validity starts at `now_ms`. Returns the request
    /// and the sync address for the enrollment string.
    fn parse(self, now_ms: i64) -> Result<(Request, String), RequestError> {
        let device = parse_device(&self.device)?;
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(RequestError::Name);
        }
        sync_core::text::check(name, sync_core::text::Kind::Line).map_err(RequestError::NameText)?;
        let role = parse_role(&self.role)?;
        if self.campaigns.len() > MAX_SCOPE_ITEMS || self.enterprises.len() > MAX_SCOPE_ITEMS {
            return Err(RequestError::ScopeTooLarge);
        }
        let campaigns = self
            .campaigns
            .iter()
            .map(|c| match c.trim().parse::<DocId>() {
                Ok(id) if id.kind() == DocKind::Campaign => Ok(id),
                _ => Err(RequestError::Campaign(shown(c))),
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let enterprises = self
            .enterprises
            .iter()
            .map(|e| e.parse::<CreditCode>().map_err(|_| RequestError::Enterprise(shown(e))))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if role == Role::Enterprise && enterprises.is_empty() {
            return Err(RequestError::EnterpriseScope);
        }
        if !(1..=MAX_DAYS).contains(&self.days) {
            return Err(RequestError::Days(self.days));
        }
        let server = self.server.trim();
        let address_ok = server.len() <= MAX_SERVER_LEN
            && server.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && !host.chars().any(|c| c.is_whitespace() || c.is_control())
                    && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
        if !address_ok {
            return Err(RequestError::Server(shown(server)));
        }
        let scope = Scope {
            campaigns: (!campaigns.is_empty()).then_some(campaigns),
            enterprises: (!enterprises.is_empty()).then_some(enterprises),
        };
        let request = Request {
            device,
            name: name.to_owned(),
            role,
            scope,
            not_before: now_ms,
            not_after: now_ms + self.days * DAY_MS,
        };
        Ok((request, server.to_owned()))
    }
}

impl Hq {
    /// Opens `data`, creating the directory, HQ's key and the database on first use.
    pub(crate) fn open(data: &Path) -> Result<Self> {
        fs::create_dir_all(data).with_context(|| format!("无法创建数据目录 {}", data.display()))?;
        let key = load_or_create_key(&data.join("hq.key"))?;
        let mut db = Connection::open(data.join("hq.db")).context("无法打开总部数据库")?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut db)?;
        Ok(Self { key, db })
    }

    /// HQ's key seed: the server's sync store signs receipts with it.
    pub(crate) fn seed(&self) -> [u8; 32] {
        self.key.to_seed()
    }

    /// HQ's own credential (role hq), issued once and kept in `<data>/hq.credential`.
    pub(crate) fn own_credential(&mut self, data: &Path, now_ms: i64) -> Result<SignedCredential> {
        let path = data.join("hq.credential");
        if let Ok(bytes) = fs::read(&path)
            && let Ok(credential) = SignedCredential::from_bytes(&bytes)
        {
            return Ok(credential);
        }
        let request = Request {
            device: self.public_key(),
            name: "总部".into(),
            role: Role::Hq,
            scope: Scope::default(),
            not_before: now_ms,
            not_after: now_ms + 10 * 365 * DAY_MS,
        };
        let credential = self.record(request, now_ms)?;
        fs::write(&path, credential.to_bytes())?;
        Ok(credential)
    }

    /// The console's own device key (`<data>/console.key`), which signs the
    /// changes people make in the console — never HQ's key — with a
    /// credential of role hq named 总部控制台, issued again when none is
    /// valid for another 30 days.
    pub(crate) fn console_key(&mut self, data: &Path, now_ms: i64) -> Result<DeviceKey> {
        let key = load_or_create_key(&data.join("console.key"))?;
        let held = self.credential_of(&key.public())?.and_then(|bytes| SignedCredential::from_bytes(&bytes).ok());
        if held.is_none_or(|c| c.credential().not_after <= now_ms + 30 * DAY_MS) {
            let request = Request {
                device: key.public(),
                name: CONSOLE_NAME.into(),
                role: Role::Hq,
                scope: Scope::default(),
                not_before: now_ms,
                not_after: now_ms + 365 * DAY_MS,
            };
            self.record(request, now_ms)?;
        }
        Ok(key)
    }

    /// HQ's signature over a briefing file's manifest.
    pub(crate) fn sign_briefing(&self, manifest: &[u8]) -> [u8; 64] {
        self.key.sign_with_domain(BRIEFING_DOMAIN, manifest)
    }

    /// HQ's public key, which devices pin.
    pub(crate) fn public_key(&self) -> DevicePublicKey {
        self.key.public()
    }

    /// Checks an operator's request, then issues and records a credential
    /// with the next serial, valid from `now_ms`. Returns the enrollment
    /// string's content for the device.
    pub(crate) fn issue(&mut self, form: IssueForm, now_ms: i64) -> Result<Enrollment, HqError> {
        let (request, server) = form.parse(now_ms)?;
        if request.device == self.public_key() {
            return Err(RequestError::HqKey.into());
        }
        let credential = self.record(request, now_ms)?;
        Ok(Enrollment { hq: self.public_key(), server, credential })
    }

    /// Signs and records a credential with the next serial.
    fn record(&mut self, request: Request, now_ms: i64) -> Result<SignedCredential> {
        // IMMEDIATE: the CLI and the running server may issue at the same time.
        let tx = self.db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let serial: i64 = tx.query_row("SELECT COALESCE(MAX(serial), 0) + 1 FROM credentials", [], |r| r.get(0))?;
        let signed = SignedCredential::issue(
            &self.key,
            Credential {
                serial: serial.unsigned_abs(),
                device: ByteBuf::from(request.device.to_bytes().to_vec()),
                name: request.name.clone(),
                role: request.role,
                scope: request.scope,
                not_before: request.not_before,
                not_after: request.not_after,
            },
        );
        tx.execute(
            "INSERT INTO credentials (serial, device, name, role, signed, not_after, issued_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                serial,
                request.device.to_bytes().to_vec(),
                request.name,
                request.role.as_str(),
                signed.to_bytes(),
                request.not_after,
                now_ms
            ],
        )?;
        tx.commit()?;
        Ok(signed)
    }

    /// The newest credential HQ issued to `device` (`SignedCredential`
    /// bytes), if any: for work whose carrier lacks its author's.
    pub(crate) fn credential_of(&self, device: &DevicePublicKey) -> Result<Option<Vec<u8>>> {
        let key = device.to_bytes().to_vec();
        let sql = "SELECT signed FROM credentials WHERE device = ?1 ORDER BY serial DESC LIMIT 1";
        Ok(self.db.query_row(sql, [key], |r| r.get(0)).optional()?)
    }

    /// Every credential HQ issued, by serial, with its revocation status.
    pub(crate) fn register(&self) -> Result<Vec<Entry>> {
        let list = self.revocation_list()?;
        let mut statement = self.db.prepare("SELECT signed, issued_at FROM credentials ORDER BY serial")?;
        let rows = statement.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut entries = Vec::new();
        for row in rows {
            let (bytes, issued_at) = row?;
            let credential =
                SignedCredential::from_bytes(&bytes).context("总部数据库中的凭证已损坏")?.credential().clone();
            let revoked = list.as_ref().is_some_and(|l| l.revokes(&credential));
            entries.push(Entry { credential, issued_at, revoked });
        }
        Ok(entries)
    }

    /// Every device HQ issued a credential to, by its newest credential,
    /// with how its sync sessions went.
    pub(crate) fn devices(&self) -> Result<Vec<Device>> {
        let list = self.revocation_list()?;
        let mut statement = self.db.prepare(
            "SELECT c.signed, s.last_at, s.last_error, COALESCE(s.sessions, 0), COALESCE(s.failures, 0)
             FROM credentials c LEFT JOIN device_sessions s ON s.device = c.device
             WHERE c.serial = (SELECT MAX(serial) FROM credentials n WHERE n.device = c.device)
             ORDER BY c.name, c.serial",
        )?;
        let rows =
            statement.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
        let mut devices = Vec::new();
        for row in rows {
            let (bytes, last_at, last_error, sessions, failures) = row?;
            let credential =
                SignedCredential::from_bytes(&bytes).context("总部数据库中的凭证已损坏")?.credential().clone();
            let revoked = list.as_ref().is_some_and(|l| l.revokes(&credential));
            devices.push(Device { credential, revoked, last_at, last_error, sessions, failures });
        }
        Ok(devices)
    }

    /// The newest signed revocation list, if HQ ever revoked anything.
    pub(crate) fn revocations(&self) -> Result<Option<SignedRevocations>> {
        newest_list(&self.db)
    }

    /// The content of the newest revocation list, checked against HQ's key.
    pub(crate) fn revocation_list(&self) -> Result<Option<RevocationList>> {
        Ok(match self.revocations()? {
            Some(signed) => Some(signed.verify(&self.key.public())?.clone()),
            None => None,
        })
    }

    /// Checks an operator's request, then revokes credential serials and/or
    /// device keys: signs and stores a new list that contains everything
    /// revoked before plus these.
    pub(crate) fn revoke(&mut self, form: RevokeForm, now_ms: i64) -> Result<RevocationList, HqError> {
        let devices = form.devices.iter().map(|d| parse_device(d)).collect::<Result<Vec<_>, _>>()?;
        if form.serials.is_empty() && devices.is_empty() {
            return Err(RequestError::NothingToRevoke.into());
        }
        let tx = self.db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let hq_key = self.key.public().to_bytes().to_vec();
        for &serial in &form.serials {
            let device: Option<Vec<u8>> = match i64::try_from(serial) {
                Ok(s) => {
                    tx.query_row("SELECT device FROM credentials WHERE serial = ?1", [s], |r| r.get(0)).optional()?
                }
                Err(_) => None,
            };
            match device {
                None => return Err(RequestError::UnknownSerial(serial).into()),
                Some(device) if device == hq_key => return Err(RequestError::RevokesHq.into()),
                Some(_) => {}
            }
        }
        for device in &devices {
            let key = device.to_bytes().to_vec();
            if key == hq_key {
                return Err(RequestError::RevokesHq.into());
            }
            let found =
                tx.query_row("SELECT 1 FROM credentials WHERE device = ?1 LIMIT 1", [key], |_| Ok(())).optional()?;
            if found.is_none() {
                return Err(RequestError::UnknownDevice(device.to_string()).into());
            }
        }
        let mut list = match newest_list(&tx)? {
            Some(signed) => signed.verify(&self.key.public()).context("吊销名单签名无效")?.clone(),
            None => RevocationList::default(),
        };
        // Each entry keeps the time it took effect: work done before it
        // stays valid (a list from before these times: its issue time).
        let RevocationList { serials, devices: keys, serials_at, devices_at, issued_at, .. } = &mut list;
        for serial in serials.iter() {
            serials_at.entry(*serial).or_insert(*issued_at);
        }
        for key in keys.iter() {
            devices_at.entry(key.clone()).or_insert(*issued_at);
        }
        for serial in &form.serials {
            serials.insert(*serial);
            serials_at.entry(*serial).or_insert(now_ms);
        }
        for device in &devices {
            let key = ByteBuf::from(device.to_bytes().to_vec());
            devices_at.entry(key.clone()).or_insert(now_ms);
            keys.insert(key);
        }
        list.version += 1;
        list.issued_at = now_ms;
        let signed = SignedRevocations::issue(&self.key, list.clone());
        tx.execute(
            "INSERT INTO revocation_lists (version, signed, issued_at) VALUES (?1, ?2, ?3)",
            params![list.version as i64, signed.to_bytes(), now_ms],
        )
        .context("无法写入吊销名单")?;
        tx.commit().context("无法写入吊销名单")?;
        Ok(list)
    }

    /// Makes the admin token on first start: returns whether it made one
    /// (then it is in [`admin_token_path`]).
    pub(crate) fn ensure_admin_token(&mut self, data: &Path, now_ms: i64) -> Result<bool> {
        let exists: bool = self.db.query_row("SELECT EXISTS (SELECT 1 FROM admin_tokens)", [], |r| r.get(0))?;
        if exists {
            return Ok(false);
        }
        self.rotate_admin_token(data, now_ms)?;
        Ok(true)
    }

    /// Replaces the admin token with a new random one, written to
    /// [`admin_token_path`] (owner-only); the old one stops working at once.
    /// Returns the new token.
    pub(crate) fn rotate_admin_token(&mut self, data: &Path, now_ms: i64) -> Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("无法获取随机数：{e}"))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        // The file first: if the database write fails, the next start makes a
        // new token; the other way round a crash could leave a hash whose
        // token nobody has.
        let path = admin_token_path(data);
        let fresh = path.with_extension("token.new");
        // A leftover of an interrupted rotation; if it cannot be removed,
        // creating the file below fails and says why.
        fs::remove_file(&fresh).ok();
        create_owner_only(&fresh, format!("{token}\n").as_bytes())
            .with_context(|| format!("无法写入管理令牌 {}", fresh.display()))?;
        fs::rename(&fresh, &path).with_context(|| format!("无法写入管理令牌 {}", path.display()))?;
        let tx = self.db.transaction()?;
        tx.execute("DELETE FROM admin_tokens", [])?;
        tx.execute(
            "INSERT INTO admin_tokens (sha256, created_at) VALUES (?1, ?2)",
            params![token_hash(&token), now_ms],
        )?;
        tx.commit()?;
        Ok(token)
    }

    /// Whether `token` is the current admin token (compared by SHA-256).
    pub(crate) fn admin_token_matches(&self, token: &str) -> Result<bool> {
        Ok(self.db.query_row(
            "SELECT EXISTS (SELECT 1 FROM admin_tokens WHERE sha256 = ?1)",
            [token_hash(token)],
            |r| r.get(0),
        )?)
    }
}

/// Where the admin token is kept.
pub(crate) fn admin_token_path(data: &Path) -> PathBuf {
    data.join(ADMIN_TOKEN_FILE)
}

/// Who holds each device key: the name and role on its newest credential.
#[derive(Clone, Debug)]
pub(crate) struct Holder {
    pub(crate) name: String,
    /// An HQ device (HQ itself, the console): its changes' messages name
    /// the account they were made for.
    pub(crate) hq: bool,
}

/// The holder of each device's newest credential, by device key, read from
/// the register under `data` on a read-only connection of its own (the
/// read model names who signed each change); none before the register
/// exists.
pub(crate) fn holders_at(data: &Path) -> Result<HashMap<[u8; 32], Holder>> {
    let path = data.join("hq.db");
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let db = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    let mut statement = db.prepare("SELECT device, name, role FROM credentials ORDER BY serial")?;
    let rows =
        statement.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    let mut holders = HashMap::new();
    for row in rows {
        let (device, name, role) = row?;
        if let Ok(device) = <[u8; 32]>::try_from(device) {
            holders.insert(device, Holder { name, hq: role == Role::Hq.as_str() });
        }
    }
    Ok(holders)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn newest_list(db: &Connection) -> Result<Option<SignedRevocations>> {
    let bytes: Option<Vec<u8>> = db
        .query_row("SELECT signed FROM revocation_lists ORDER BY version DESC LIMIT 1", [], |r| r.get(0))
        .optional()?;
    Ok(bytes.map(|b| SignedRevocations::from_bytes(&b)).transpose()?)
}

/// Writes a new file readable only by its owner, synced to disk.
fn create_owner_only(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// The domain of HQ's signature over a briefing file's manifest.
pub(crate) const BRIEFING_DOMAIN: &[u8] = b"fieldsync/briefing/v1";

/// The name on the console's credential: what a change it signs is shown as.
pub(crate) const CONSOLE_NAME: &str = "总部控制台";

fn load_or_create_key(path: &Path) -> Result<DeviceKey> {
    if path.exists() {
        let text = fs::read_to_string(path).with_context(|| format!("无法读取密钥 {}", path.display()))?;
        let seed: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("密钥文件 {} 已损坏", path.display()))?;
        return Ok(DeviceKey::from_seed(seed));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("无法获取随机数：{e}"))?;
    create_owner_only(path, hex::encode(seed).as_bytes())
        .with_context(|| format!("无法创建密钥 {}", path.display()))?;
    Ok(DeviceKey::from_seed(seed))
}

fn migrate(db: &mut Connection) -> Result<()> {
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        bail!("总部数据库版本 {version} 比本程序新，请升级 fieldsync-server");
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = db.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(device: &DevicePublicKey) -> IssueForm {
        IssueForm {
            device: device.to_string(),
            name: " 张三 ".into(),
            role: "inspector".into(),
            campaigns: Vec::new(),
            enterprises: Vec::new(),
            days: 30,
            server: "127.0.0.1:4433".into(),
        }
    }

    #[test]
    fn key_is_created_once_owner_only_and_serials_increase() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut hq = Hq::open(dir.path()).unwrap();
        let key = hq.public_key();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(dir.path().join("hq.key")).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let device = DeviceKey::from_seed([9; 32]).public();
        let first = hq.issue(form(&device), 0).unwrap();
        let second = hq.issue(form(&device), 0).unwrap();
        assert_eq!((first.credential.credential().serial, second.credential.credential().serial), (1, 2));
        assert_eq!(second.hq, key);
        let credential = second.verify(&device, 500).unwrap();
        assert_eq!((credential.name.as_str(), credential.not_after), ("张三", 30 * DAY_MS));
        drop(hq);
        assert_eq!(Hq::open(dir.path()).unwrap().public_key(), key, "the key survives a restart");
    }

    #[test]
    fn bad_forms_are_refused_and_use_no_serial() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut hq = Hq::open(dir.path()).unwrap();
        let device = DeviceKey::from_seed([9; 32]).public();
        type Spoil = fn(&mut IssueForm);
        let cases: [(Spoil, &str); 17] = [
            (|f| f.device = "not-a-key".into(), "DeviceKey"),
            (|f| f.device = "00".repeat(31), "DeviceKey"),
            (|f| f.name = "  ".into(), "Name"),
            (|f| f.name = "名".repeat(65), "Name"),
            (|f| f.role = "boss".into(), r#"Role("boss")"#),
            (|f| f.campaigns = vec!["cmp-1".into()], "Campaign"),
            (|f| f.campaigns = vec![format!("dos-{}", "0".repeat(32))], "Campaign"),
            (|f| f.enterprises = vec!["123".into()], "Enterprise"),
            (|f| f.campaigns = vec![String::new(); 17], "ScopeTooLarge"),
            (|f| f.role = "enterprise".into(), "EnterpriseScope"),
            (|f| f.days = 0, "Days(0)"),
            (|f| f.days = MAX_DAYS + 1, "Days"),
            (|f| f.days = i64::MAX, "Days"),
            (|f| f.server = "127.0.0.1".into(), "Server"),
            (|f| f.server = "hq example:4433".into(), "Server"),
            (|f| f.server = ":4433".into(), "Server"),
            (|f| f.server = format!("{}:4433", "h".repeat(300)), "Server"),
        ];
        for (spoil, expected) in cases {
            let mut bad = form(&device);
            spoil(&mut bad);
            match hq.issue(bad, 0) {
                Err(HqError::Refused(error)) => assert!(format!("{error:?}").starts_with(expected), "{error:?}"),
                other => panic!("{expected}: {:?}", other.map(|e| e.to_string())),
            }
        }
        assert!(hq.register().unwrap().is_empty());
        assert_eq!(hq.issue(form(&device), 0).unwrap().credential.credential().serial, 1);
    }

    #[test]
    fn the_largest_form_still_fits_an_enrollment_string() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut hq = Hq::open(dir.path()).unwrap();
        let device = DeviceKey::from_seed([9; 32]).public();
        let mut largest = form(&device);
        largest.name = "🏗".repeat(MAX_NAME_CHARS);
        largest.role = "enterprise".into();
        largest.campaigns = (0..MAX_SCOPE_ITEMS).map(|i| format!("cmp-{i:032x}")).collect();
        largest.enterprises = (0..MAX_SCOPE_ITEMS).map(|i| format!("91640200MA76XYW{i:03}")).collect();
        largest.days = MAX_DAYS;
        largest.server = format!("{}:65535", "h".repeat(MAX_SERVER_LEN - 6));
        let enrollment = hq.issue(largest, 0).unwrap();
        let parsed: Enrollment = enrollment.to_string().parse().unwrap();
        assert_eq!(parsed, enrollment);
    }

    #[test]
    fn revocations_name_known_credentials_and_accumulate() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut hq = Hq::open(dir.path()).unwrap();
        let device = DeviceKey::from_seed([9; 32]).public();
        let stranger = DeviceKey::from_seed([8; 32]).public();
        hq.issue(form(&device), 0).unwrap();
        hq.issue(form(&stranger), 0).unwrap();
        hq.own_credential(dir.path(), 0).unwrap();
        let revoke = |serials: Vec<u64>, devices: Vec<String>| RevokeForm { serials, devices };

        for (bad, expected) in [
            (revoke(vec![], vec![]), "NothingToRevoke"),
            (revoke(vec![4], vec![]), "UnknownSerial(4)"),
            (revoke(vec![u64::MAX], vec![]), "UnknownSerial"),
            (revoke(vec![1], vec!["zz".into()]), "DeviceKey"),
            (revoke(vec![3], vec![]), "RevokesHq"),
            (revoke(vec![], vec![hq.public_key().to_string()]), "RevokesHq"),
            (revoke(vec![1], vec![DeviceKey::from_seed([7; 32]).public().to_string()]), "UnknownDevice"),
        ] {
            match hq.revoke(bad, 10) {
                Err(HqError::Refused(error)) => assert!(format!("{error:?}").starts_with(expected), "{error:?}"),
                other => panic!("{:?}", other.map(|l| l.version)),
            }
        }
        assert!(hq.revocations().unwrap().is_none(), "refusals sign no list");

        let first = hq.revoke(revoke(vec![1], vec![]), 10).unwrap();
        let second = hq.revoke(revoke(vec![], vec![stranger.to_string()]), 20).unwrap();
        assert_eq!((first.version, second.version, second.issued_at), (1, 2, 20));
        assert_eq!(second.serials, BTreeSet::from([1]));
        assert_eq!(hq.revocation_list().unwrap(), Some(second));
        let revoked: Vec<bool> = hq.register().unwrap().iter().map(|entry| entry.revoked).collect();
        assert_eq!(revoked, [true, true, false]);
    }

    #[test]
    fn admin_token_is_made_once_kept_as_a_hash_and_rotated() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut hq = Hq::open(dir.path()).unwrap();
        assert!(hq.ensure_admin_token(dir.path(), 0).unwrap());
        let path = admin_token_path(dir.path());
        let token = fs::read_to_string(&path).unwrap().trim().to_owned();
        assert_eq!(token.len(), 43, "32 bytes, base64url without padding");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(hq.admin_token_matches(&token).unwrap());
        assert!(!hq.admin_token_matches("wrong").unwrap());
        assert!(!hq.ensure_admin_token(dir.path(), 0).unwrap(), "made only once");
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), token);
        for file in ["hq.db", "hq.db-wal"] {
            let bytes = fs::read(dir.path().join(file)).unwrap_or_default();
            assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "only the hash is stored");
        }

        let rotated = hq.rotate_admin_token(dir.path(), 1).unwrap();
        assert_ne!(rotated, token);
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), rotated);
        assert!(hq.admin_token_matches(&rotated).unwrap());
        assert!(!hq.admin_token_matches(&token).unwrap(), "the old token stops working");
    }
}
