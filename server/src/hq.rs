//! HQ's identity and the register of credentials it issued.
//!
//! HQ's Ed25519 key is the root of trust: it is generated on first start in
//! `<data>/hq.key` (owner-only) and its public key is what devices pin at
//! enrollment. Issued credentials are recorded in `<data>/hq.db` (SQLite) so
//! serials are unique and HQ can list and later revoke them.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};
use serde_bytes::ByteBuf;
use sync_core::credential::{Credential, Enrollment, RevocationList, Role, Scope, SignedCredential, SignedRevocations};
use sync_core::identity::{DeviceKey, DevicePublicKey};

const MIGRATIONS: &[&str] = &[
    include_str!("../../schemas/migrations/server/0001_init.sql"),
    include_str!("../../schemas/migrations/server/0002_revocations.sql"),
];

/// HQ's data directory: key and credential register.
pub(crate) struct Hq {
    key: DeviceKey,
    db: Connection,
}

/// What to put in a new credential.
pub(crate) struct Request {
    pub(crate) device: DevicePublicKey,
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) scope: Scope,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
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
            not_after: now_ms + 10 * 365 * 86_400_000,
        };
        let credential = self.issue(request, now_ms)?;
        fs::write(&path, credential.to_bytes())?;
        Ok(credential)
    }

    /// HQ's public key, which devices pin.
    pub(crate) fn public_key(&self) -> DevicePublicKey {
        self.key.public()
    }

    /// Issues, records and returns a credential with the next serial.
    pub(crate) fn issue(&mut self, request: Request, now_ms: i64) -> Result<SignedCredential> {
        if request.name.trim().is_empty() {
            bail!("姓名或站点名称不能为空（--name）");
        }
        if request.not_after <= request.not_before {
            bail!("有效期必须晚于生效时间");
        }
        if request.role == Role::Enterprise && request.scope.enterprises.is_none() {
            bail!("企业凭证必须用 --enterprise 限定到该企业");
        }
        let tx = self.db.transaction()?;
        let serial: i64 = tx.query_row("SELECT COALESCE(MAX(serial), 0) + 1 FROM credentials", [], |r| r.get(0))?;
        let signed = SignedCredential::issue(
            &self.key,
            Credential {
                serial: serial.unsigned_abs(),
                device: ByteBuf::from(request.device.to_bytes().to_vec()),
                name: request.name.trim().to_owned(),
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
                request.name.trim(),
                format!("{:?}", request.role).to_lowercase(),
                signed.to_bytes(),
                request.not_after,
                now_ms
            ],
        )?;
        tx.commit()?;
        Ok(signed)
    }

    /// The newest signed revocation list, if HQ ever revoked anything.
    pub(crate) fn revocations(&self) -> Result<Option<SignedRevocations>> {
        let bytes: Option<Vec<u8>> = self
            .db
            .query_row("SELECT signed FROM revocation_lists ORDER BY version DESC LIMIT 1", [], |r| r.get(0))
            .optional()?;
        Ok(bytes.map(|b| SignedRevocations::from_bytes(&b)).transpose()?)
    }

    /// Revokes credential serials and/or device keys: signs and stores a new
    /// list that contains everything revoked before plus these.
    pub(crate) fn revoke(
        &mut self,
        serials: &[u64],
        devices: &[DevicePublicKey],
        now_ms: i64,
    ) -> Result<RevocationList> {
        let mut list = match self.revocations()? {
            Some(signed) => signed.verify(&self.key.public())?.clone(),
            None => RevocationList::default(),
        };
        list.version += 1;
        list.issued_at = now_ms;
        list.serials.extend(serials.iter().copied());
        list.devices.extend(devices.iter().map(|d| ByteBuf::from(d.to_bytes().to_vec())));
        let signed = SignedRevocations::issue(&self.key, list.clone());
        self.db.execute(
            "INSERT INTO revocation_lists (version, signed, issued_at) VALUES (?1, ?2, ?3)",
            params![list.version as i64, signed.to_bytes(), now_ms],
        )?;
        Ok(list)
    }

    /// The enrollment string for a credential: HQ's key, address, credential.
    pub(crate) fn enrollment(&self, credential: SignedCredential, server: &str) -> Enrollment {
        Enrollment { hq: self.public_key(), server: server.to_owned(), credential }
    }
}

fn load_or_create_key(path: &PathBuf) -> Result<DeviceKey> {
    if path.exists() {
        let text = fs::read_to_string(path).with_context(|| format!("无法读取总部密钥 {}", path.display()))?;
        let seed: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("总部密钥文件 {} 已损坏", path.display()))?;
        return Ok(DeviceKey::from_seed(seed));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("无法获取随机数：{e}"))?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("无法创建总部密钥 {}", path.display()))?;
    file.write_all(hex::encode(seed).as_bytes())?;
    file.sync_all()?;
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
        let request = || Request {
            device,
            name: "张三".into(),
            role: Role::Inspector,
            scope: Scope::default(),
            not_before: 0,
            not_after: 1_000,
        };
        let first = hq.issue(request(), 0).unwrap();
        let second = hq.issue(request(), 0).unwrap();
        assert_eq!((first.credential().serial, second.credential().serial), (1, 2));
        assert!(second.verify(&key, 500, None).is_ok());
        drop(hq);
        assert_eq!(Hq::open(dir.path()).unwrap().public_key(), key, "the key survives a restart");
    }
}
