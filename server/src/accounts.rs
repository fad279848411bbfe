//! HQ staff accounts for the web console: users with Argon2id password
//! hashes and a role, their signed-in sessions, a login rate limit, and the
//! audit log of what they changed.
//!
//! - A session is a random token in an HttpOnly cookie; only its SHA-256 is
//!   stored. It ends after [`IDLE`] without use, after [`ABSOLUTE`] in any
//!   case, or at logout. Each session has a form token its pages carry,
//!   checked on every form sent (CSRF).
//! - Failed logins are counted per account and per address: past
//!   [`MAX_FAILURES`] in [`WINDOW`], that account or address waits.
//! - [`Accounts`] has its own connection to `<data>/hq.db` (whose tables
//!   the register's migrations make) behind its own lock, so a page never
//!   waits for the register or the sync sessions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// A session unused this long ends (ms).
pub(crate) const IDLE: i64 = 30 * 60 * 1000;
/// A session ends this long after login whatever happens (ms).
pub(crate) const ABSOLUTE: i64 = 12 * 60 * 60 * 1000;
/// Failed logins allowed per account, and per address, in [`WINDOW`].
const MAX_FAILURES: usize = 5;
/// The window failed logins are counted in (ms).
const WINDOW: i64 = 15 * 60 * 1000;
/// Past this many names and addresses with failures, the stale are forgotten.
const MAX_TRACKED: usize = 10_000;
/// A session's last use is written at most this often (ms).
const SEEN_EVERY: i64 = 60 * 1000;
/// Shortest password, in characters.
const MIN_PASSWORD: usize = 10;
/// Longest user name, in characters.
const MAX_USER_NAME: usize = 32;

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Also manages users, devices and credentials.
    Admin,
    /// Reads, decides conflicts, prepares the briefing.
    Analyst,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Role::Admin => "管理员",
            Role::Analyst => "分析员",
        }
    }

    /// By identifier or Chinese label.
    pub(crate) fn parse(text: &str) -> Option<Role> {
        [Role::Admin, Role::Analyst].into_iter().find(|r| r.as_str() == text || r.label() == text)
    }
}

/// A signed-in account, as a page sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) role: Role,
    /// The form token its pages carry.
    pub(crate) csrf: String,
}

/// Why an account was not made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountError {
    #[error("用户名无效：{0}（1–{MAX_USER_NAME} 个字符，不含空白、控制或不可见字符）")]
    Name(String),
    #[error("密码太短：至少 {MIN_PASSWORD} 个字符")]
    ShortPassword,
    #[error("用户 {0} 已存在")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    /// The same message for an unknown name and a wrong password.
    #[error("用户名或密码不正确")]
    Wrong,
    #[error("登录失败次数过多，请 {minutes} 分钟后再试")]
    Limited { minutes: i64 },
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditEntry {
    pub(crate) at: i64,
    pub(crate) user: String,
    pub(crate) action: String,
    pub(crate) detail: String,
}

/// The console's accounts and sessions.
pub(crate) struct Accounts {
    db: Mutex<Connection>,
    failures: Mutex<HashMap<String, Vec<i64>>>,
    /// The hash of a password no one knows, checked against when a name is
    /// unknown: it takes as long as a wrong password.
    decoy: String,
}

impl Accounts {
    /// Opens the accounts in `<data>/hq.db`, whose tables
    /// [`crate::register::Hq::open`] made.
    pub(crate) fn open(data: &Path) -> Result<Self> {
        let db = Connection::open(data.join("hq.db")).context("无法打开总部数据库")?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        let decoy = hash_password(&random_token()?)?;
        Ok(Accounts { db: Mutex::new(db), failures: Mutex::default(), decoy })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds user `name` with `role` and `password`, recorded as done by
    /// `by` in the audit log.
    pub(crate) fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
        by: &str,
        now: i64,
    ) -> Result<(), AccountError> {
        let name = name.trim();
        let clean = sync_core::text::check(name, sync_core::text::Kind::Line).is_ok()
            && !name.is_empty()
            && name.chars().count() <= MAX_USER_NAME
            && !name.chars().any(char::is_whitespace);
        if !clean {
            return Err(AccountError::Name(name.chars().filter(|c| !c.is_control()).take(40).collect()));
        }
        if password.chars().count() < MIN_PASSWORD {
            return Err(AccountError::ShortPassword);
        }
        let hash = hash_password(password)?;
        let mut db = self.db();
        let tx = db.transaction().map_err(anyhow::Error::from)?;
        let exists: Option<String> = tx
            .query_row("SELECT name FROM users WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(anyhow::Error::from)?;
        if exists.is_some() {
            return Err(AccountError::Exists(name.to_owned()));
        }
        tx.execute(
            "INSERT INTO users (name, role, password, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), hash, now],
        )
        .map_err(anyhow::Error::from)?;
        audit(&tx, by, "添加用户", &format!("{name}（{}）", role.label()), now)?;
        tx.commit().map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// Every user: name, role, whether disabled.
    pub(crate) fn users(&self) -> Result<Vec<(String, Role, bool)>> {
        let db = self.db();
        let mut statement = db.prepare("SELECT name, role, disabled FROM users ORDER BY name")?;
        let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?)))?;
        let mut users = Vec::new();
        for row in rows {
            let (name, role, disabled) = row?;
            let role = Role::parse(&role).with_context(|| format!("总部数据库中用户 {name} 的角色无效"))?;
            users.push((name, role, disabled));
        }
        Ok(users)
    }

    /// Signs `name` in from `address` with `password`: a new session's
    /// cookie token and the session.
    pub(crate) fn login(
        &self,
        name: &str,
        password: &str,
        address: IpAddr,
        now: i64,
    ) -> Result<(String, Session), LoginError> {
        let keys = [format!("user:{name}"), format!("addr:{address}")];
        if let Some(until) = self.limited(&keys, now) {
            return Err(LoginError::Limited { minutes: ((until - now) / 60_000).max(1) });
        }
        let found: Option<(String, String, bool)> = self
            .db()
            .query_row("SELECT role, password, disabled FROM users WHERE name = ?1", [name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(anyhow::Error::from)?;
        // An unknown name costs the same hashing as a wrong password.
        let stored = found.as_ref().map_or(self.decoy.as_str(), |(_, hash, _)| hash.as_str());
        let matches = verify_password(password, stored);
        let account = found.filter(|(_, _, disabled)| !disabled).and_then(|(role, _, _)| Role::parse(&role));
        let (Some(role), true) = (account, matches) else {
            self.failed(&keys, now);
            return Err(LoginError::Wrong);
        };
        let token = random_token()?;
        let csrf = random_token()?;
        let mut db = self.db();
        let tx = db.transaction().map_err(anyhow::Error::from)?;
        tx.execute(
            "INSERT INTO console_sessions (token_hash, user_name, csrf, created_at, seen_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![token_hash(&token), name, csrf, now],
        )
        .map_err(anyhow::Error::from)?;
        // Sessions that ended are forgotten as new ones begin.
        tx.execute(
            "DELETE FROM console_sessions WHERE seen_at < ?1 OR created_at < ?2",
            params![now - IDLE, now - ABSOLUTE],
        )
        .map_err(anyhow::Error::from)?;
        audit(&tx, name, "登录", &format!("来自 {address}"), now)?;
        tx.commit().map_err(anyhow::Error::from)?;
        Ok((token, Session { user: name.to_owned(), role, csrf }))
    }

    /// The session of cookie `token`, if it is signed in and has not
    /// ended; its use is noted.
    pub(crate) fn session(&self, token: &str, now: i64) -> Result<Option<Session>> {
        let hash = token_hash(token);
        let db = self.db();
        let found: Option<(String, String, String, i64, i64, bool)> = db
            .query_row(
                "SELECT s.user_name, u.role, s.csrf, s.created_at, s.seen_at, u.disabled
                 FROM console_sessions s JOIN users u ON u.name = s.user_name WHERE s.token_hash = ?1",
                [&hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((user, role, csrf, created_at, seen_at, disabled)) = found else { return Ok(None) };
        let role = Role::parse(&role);
        if disabled || now - seen_at > IDLE || now - created_at > ABSOLUTE || role.is_none() {
            db.execute("DELETE FROM console_sessions WHERE token_hash = ?1", [&hash])?;
            return Ok(None);
        }
        if now - seen_at > SEEN_EVERY {
            db.execute("UPDATE console_sessions SET seen_at = ?2 WHERE token_hash = ?1", params![hash, now])?;
        }
        Ok(role.map(|role| Session { user, role, csrf }))
    }

    /// Ends the session of cookie `token`.
    pub(crate) fn logout(&self, token: &str, now: i64) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let user: Option<String> = tx
            .query_row("SELECT user_name FROM console_sessions WHERE token_hash = ?1", [token_hash(token)], |r| {
                r.get(0)
            })
            .optional()?;
        tx.execute("DELETE FROM console_sessions WHERE token_hash = ?1", [token_hash(token)])?;
        if let Some(user) = user {
            audit(&tx, &user, "退出登录", "", now)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records that `user` did `action` (`detail` says to what).
    pub(crate) fn record(&self, user: &str, action: &str, detail: &str, now: i64) -> Result<()> {
        audit(&self.db(), user, action, detail, now)
    }

    /// The newest `limit` entries of the audit log, newest first.
    pub(crate) fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let db = self.db();
        let mut statement =
            db.prepare("SELECT at, user_name, action, detail FROM audit_log ORDER BY id DESC LIMIT ?1")?;
        let rows = statement.query_map([limit], |r| {
            Ok(AuditEntry { at: r.get(0)?, user: r.get(1)?, action: r.get(2)?, detail: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the first of `keys` that is limited may try again, if one is.
    fn limited(&self, keys: &[String], now: i64) -> Option<i64> {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter()
            .filter_map(|key| {
                let times = failures.get_mut(key)?;
                times.retain(|t| now - t < WINDOW);
                (times.len() >= MAX_FAILURES).then(|| times[0] + WINDOW)
            })
            .max()
    }

    fn failed(&self, keys: &[String], now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        // Names and addresses whose failures are all past the window are
        // forgotten, so guessing many names cannot fill memory.
        if failures.len() > MAX_TRACKED {
            failures.retain(|_, times| times.last().is_some_and(|t| now - t < WINDOW));
        }
        for key in keys {
            failures.entry(key.clone()).or_default().push(now);
        }
    }
}

/// Whether two form tokens are the same, in time that does not tell how
/// much of them matched.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn audit(db: &Connection, user: &str, action: &str, detail: &str, now: i64) -> Result<()> {
    db.execute(
        "INSERT INTO audit_log (at, user_name, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now, user, action, detail],
    )?;
    Ok(())
}

fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("无法取得随机数：{e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash =
        argon2::Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(hash.to_string())
}

fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|hash| argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// 32 random bytes, URL-safe base64.
pub(crate) fn random_token() -> Result<String> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("无法取得随机数：{e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
