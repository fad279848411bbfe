//! HQ-issued credentials, revocation lists and enrollment strings.
//!
//! HQ's key is the root of trust. A [`Credential`] says which device key may
//! act as whom (role), on what (scope), and when (validity); HQ signs the
//! credential's exact CBOR bytes, so any peer holding HQ's public key can
//! check it offline — that is how a station relay accepts a tablet with no
//! link to HQ. A [`RevocationList`] is signed the same way and travels like
//! data; a newer list replaces an older one. An [`Enrollment`] carries a
//! credential, HQ's key and the server address as one short string (a QR
//! code) that `field enroll` imports.
//!
//! Format: `schemas/credentials.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::identity::{DeviceKey, DevicePublicKey};
use crate::ids::{CreditCode, DocId};

const CREDENTIAL_DOMAIN: &[u8] = b"fieldsync/credential/v1";
const REVOCATION_DOMAIN: &[u8] = b"fieldsync/revocations/v1";
const ENROLLMENT_PREFIX: &str = "FS1:";
/// Enrollment strings longer than this are refused (a QR code holds ~2,900 bytes).
const MAX_ENROLLMENT_LEN: usize = 2_900;

/// Why a credential, revocation list or enrollment string is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialError {
    /// Not signed by the pinned HQ key.
    #[error("凭证不是由总部签发的（签名无效）")]
    BadSignature,
    /// Not yet valid.
    #[error("凭证尚未生效（生效时间 {0}）")]
    NotYetValid(String),
    /// Expired.
    #[error("凭证已过期（有效期至 {0}），请联系总部重新签发")]
    Expired(String),
    /// On the revocation list.
    #[error("凭证已被总部吊销（编号 {0}）")]
    Revoked(u64),
    /// The credential is for another device key.
    #[error("凭证属于另一台设备")]
    WrongDevice,
    /// The bytes or string do not parse.
    #[error("凭证格式无效：{0}")]
    Malformed(String),
}

/// What a device may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An inspector's tablet: syncs the dossiers of its scope.
    Inspector,
    /// A station relay (安监站): stores and forwards for devices in its scope.
    Station,
    /// HQ staff: everything.
    Hq,
    /// An inspected enterprise: only its own dossiers.
    Enterprise,
}

impl Role {
    /// The identifier stored in documents (`inspector`, `enterprise`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inspector => "inspector",
            Role::Station => "station",
            Role::Hq => "hq",
            Role::Enterprise => "enterprise",
        }
    }

    /// A role by its identifier or its Chinese label.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Inspector, Role::Station, Role::Hq, Role::Enterprise]
            .into_iter()
            .find(|role| role.as_str() == s || role.label() == s)
    }

    /// Chinese label.
    pub fn label(self) -> &'static str {
        match self {
            Role::Inspector => "检查员",
            Role::Station => "安监站",
            Role::Hq => "总部",
            Role::Enterprise => "企业",
        }
    }
}

/// Which documents a credential covers. `None` means all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Campaigns covered.
    pub campaigns: Option<BTreeSet<DocId>>,
    /// Enterprises covered (by credit code) within those campaigns.
    pub enterprises: Option<BTreeSet<CreditCode>>,
}

impl Scope {
    /// Whether a document of `campaign` (and, for a dossier, `enterprise`)
    /// is in scope. Campaign-wide documents (the campaign, its briefing) need
    /// no enterprise restriction to be visible, but a scope limited to some
    /// enterprises sees only their dossiers.
    pub fn allows(&self, campaign: &DocId, enterprise: Option<&CreditCode>) -> bool {
        let campaign_ok = self.campaigns.as_ref().is_none_or(|c| c.contains(campaign));
        let enterprise_ok = match (&self.enterprises, enterprise) {
            (None, _) => true,
            (Some(allowed), Some(e)) => allowed.contains(e),
            (Some(_), None) => false,
        };
        campaign_ok && enterprise_ok
    }
}

/// A credential: HQ's statement about one device key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Serial number, unique per HQ; revocations name it.
    pub serial: u64,
    /// The device's public key.
    pub device: ByteBuf,
    /// Display name (the person or station).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Scope.
    pub scope: Scope,
    /// Valid from (ms since the Unix epoch).
    pub not_before: i64,
    /// Valid until (ms since the Unix epoch).
    pub not_after: i64,
}

impl Credential {
    /// The device key the credential is for.
    pub fn device_key(&self) -> Result<DevicePublicKey, CredentialError> {
        DevicePublicKey::from_bytes(&self.device).map_err(|e| CredentialError::Malformed(e.to_string()))
    }
}

/// A credential with HQ's signature over its exact CBOR bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCredential {
    body: Vec<u8>,
    signature: [u8; 64],
    credential: Credential,
}

#[derive(Serialize, Deserialize)]
struct Signed {
    body: ByteBuf,
    sig: ByteBuf,
}

fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing CBOR into a Vec cannot fail for these plain structs.
    let _ = ciborium::into_writer(value, &mut out);
    out
}

fn uncbor<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, CredentialError> {
    ciborium::from_reader(bytes).map_err(|e| CredentialError::Malformed(e.to_string()))
}

fn signature_of(bytes: &[u8]) -> Result<[u8; 64], CredentialError> {
    bytes.try_into().map_err(|_| CredentialError::Malformed("签名长度错误".into()))
}

impl SignedCredential {
    /// HQ issues a credential.
    pub fn issue(hq: &DeviceKey, credential: Credential) -> Self {
        let body = cbor(&credential);
        let signature = hq.sign_with_domain(CREDENTIAL_DOMAIN, &body);
        Self { body, signature, credential }
    }

    /// The credential, unchecked. Use [`Self::verify`] before trusting it.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Checks HQ's signature, validity at `now_ms`, and the revocation list.
    pub fn verify(
        &self,
        hq: &DevicePublicKey,
        now_ms: i64,
        revocations: Option<&RevocationList>,
    ) -> Result<&Credential, CredentialError> {
        hq.verify_with_domain(CREDENTIAL_DOMAIN, &self.body, &self.signature)
            .map_err(|_| CredentialError::BadSignature)?;
        let c = &self.credential;
        if now_ms < c.not_before {
            return Err(CredentialError::NotYetValid(crate::doc::rfc3339(c.not_before)));
        }
        if now_ms > c.not_after {
            return Err(CredentialError::Expired(crate::doc::rfc3339(c.not_after)));
        }
        if let Some(list) = revocations
            && list.revokes(c)
        {
            return Err(CredentialError::Revoked(c.serial));
        }
        Ok(c)
    }

    /// CBOR bytes `{body, sig}`.
    pub fn to_bytes(&self) -> Vec<u8> {
        cbor(&Signed { body: ByteBuf::from(self.body.clone()), sig: ByteBuf::from(self.signature.to_vec()) })
    }

    /// Parses bytes made by [`Self::to_bytes`] (signature not yet checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        let signed: Signed = uncbor(bytes)?;
        let credential: Credential = uncbor(&signed.body)?;
        credential.device_key()?;
        Ok(Self { body: signed.body.into_vec(), signature: signature_of(&signed.sig)?, credential })
    }
}

/// HQ's list of revoked credentials and device keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Increases with every list HQ issues; a newer list replaces an older one.
    pub version: u64,
    /// When HQ issued it (ms).
    pub issued_at: i64,
    /// Revoked credential serials.
    pub serials: BTreeSet<u64>,
    /// Revoked device keys (every credential of a stolen tablet).
    pub devices: BTreeSet<ByteBuf>,
    /// When each serial's revocation took effect (ms, HQ's clock). Lists
    /// from before this field: the list's `issued_at`.
    #[serde(default)]
    pub serials_at: BTreeMap<u64, i64>,
    /// When each device's revocation took effect (ms, HQ's clock).
    #[serde(default)]
    pub devices_at: BTreeMap<ByteBuf, i64>,
}

impl RevocationList {
    /// Whether `credential` is revoked.
    pub fn revokes(&self, credential: &Credential) -> bool {
        self.revoked_since(credential).is_some()
    }

    /// Since when `credential` is revoked (ms, HQ's clock), if it is: work
    /// its holder did before then stays valid where HQ's receipts show it.
    pub fn revoked_since(&self, credential: &Credential) -> Option<i64> {
        let serial = self
            .serials
            .contains(&credential.serial)
            .then(|| self.serials_at.get(&credential.serial).copied().unwrap_or(self.issued_at));
        let device = self
            .devices
            .contains(&credential.device)
            .then(|| self.devices_at.get(&credential.device).copied().unwrap_or(self.issued_at));
        serial.into_iter().chain(device).min()
    }
}

/// A revocation list with HQ's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRevocations {
    body: Vec<u8>,
    signature: [u8; 64],
    list: RevocationList,
}

impl SignedRevocations {
    /// HQ signs a list.
    pub fn issue(hq: &DeviceKey, list: RevocationList) -> Self {
        let body = cbor(&list);
        let signature = hq.sign_with_domain(REVOCATION_DOMAIN, &body);
        Self { body, signature, list }
    }

    /// Checks HQ's signature and returns the list.
    pub fn verify(&self, hq: &DevicePublicKey) -> Result<&RevocationList, CredentialError> {
        hq.verify_with_domain(REVOCATION_DOMAIN, &self.body, &self.signature)
            .map_err(|_| CredentialError::BadSignature)?;
        Ok(&self.list)
    }

    /// CBOR bytes `{body, sig}`.
    pub fn to_bytes(&self) -> Vec<u8> {
        cbor(&Signed { body: ByteBuf::from(self.body.clone()), sig: ByteBuf::from(self.signature.to_vec()) })
    }

    /// Parses bytes made by [`Self::to_bytes`] (signature not yet checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        let signed: Signed = uncbor(bytes)?;
        Ok(Self { list: uncbor(&signed.body)?, body: signed.body.into_vec(), signature: signature_of(&signed.sig)? })
    }
}

/// What a device imports at enrollment: HQ's key to pin, where HQ is, and
/// its own credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    /// HQ's public key (pinned from now on).
    pub hq: DevicePublicKey,
    /// HQ's sync address, e.g. `hq.example.cn:4433`.
    pub server: String,
    /// The device's credential.
    pub credential: SignedCredential,
}

#[derive(Serialize, Deserialize)]
struct EnrollmentBody {
    hq: ByteBuf,
    server: String,
    credential: ByteBuf,
}

impl Enrollment {
    /// Checks the credential against the HQ key it pins and the device's own key.
    pub fn verify(&self, device: &DevicePublicKey, now_ms: i64) -> Result<&Credential, CredentialError> {
        let credential = self.credential.verify(&self.hq, now_ms, None)?;
        if credential.device_key()? != *device {
            return Err(CredentialError::WrongDevice);
        }
        Ok(credential)
    }
}

impl fmt::Display for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = EnrollmentBody {
            hq: ByteBuf::from(self.hq.to_bytes().to_vec()),
            server: self.server.clone(),
            credential: ByteBuf::from(self.credential.to_bytes()),
        };
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cbor(&body));
        write!(f, "{ENROLLMENT_PREFIX}{text}")
    }
}

impl FromStr for Enrollment {
    type Err = CredentialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_ENROLLMENT_LEN {
            return Err(CredentialError::Malformed("入网码过长".into()));
        }
        let text = s
            .strip_prefix(ENROLLMENT_PREFIX)
            .ok_or_else(|| CredentialError::Malformed("不是 FieldSync 入网码".into()))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CredentialError::Malformed("入网码内容损坏".into()))?;
        let body: EnrollmentBody = uncbor(&bytes)?;
        Ok(Self {
            hq: DevicePublicKey::from_bytes(&body.hq).map_err(|e| CredentialError::Malformed(e.to_string()))?,
            server: body.server,
            credential: SignedCredential::from_bytes(&body.credential)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn credential(device: &DeviceKey, serial: u64, role: Role) -> Credential {
        Credential {
            serial,
            device: ByteBuf::from(device.public().to_bytes().to_vec()),
            name: "张三".into(),
            role,
            scope: Scope::default(),
            not_before: 0,
            not_after: 10 * DAY,
        }
    }

    #[test]
    fn credentials_verify_offline_and_refuse_clearly() {
        let hq = DeviceKey::from_seed([1; 32]);
        let tablet = DeviceKey::from_seed([2; 32]);
        let signed = SignedCredential::issue(&hq, credential(&tablet, 7, Role::Inspector));
        let parsed = SignedCredential::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(parsed.verify(&hq.public(), DAY, None).unwrap().role, Role::Inspector);

        let stranger = DeviceKey::from_seed([3; 32]);
        assert_eq!(parsed.verify(&stranger.public(), DAY, None), Err(CredentialError::BadSignature));
        assert!(matches!(parsed.verify(&hq.public(), 11 * DAY, None), Err(CredentialError::Expired(_))));
        assert!(matches!(parsed.verify(&hq.public(), -1, None), Err(CredentialError::NotYetValid(_))));

        let mut list = RevocationList { version: 1, issued_at: DAY, ..RevocationList::default() };
        list.serials.insert(7);
        let signed_list = SignedRevocations::from_bytes(&SignedRevocations::issue(&hq, list).to_bytes()).unwrap();
        let list = signed_list.verify(&hq.public()).unwrap();
        assert_eq!(parsed.verify(&hq.public(), DAY, Some(list)), Err(CredentialError::Revoked(7)));
        assert_eq!(signed_list.verify(&stranger.public()), Err(CredentialError::BadSignature));

        // A credential forged by changing a byte of the signed body.
        let mut bytes = signed.to_bytes();
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
        if let Ok(forged) = SignedCredential::from_bytes(&bytes) {
            assert!(forged.verify(&hq.public(), DAY, None).is_err());
        }
    }

    #[test]
    fn enrollment_strings_round_trip_and_fit_a_qr_code() {
        let hq = DeviceKey::from_seed([1; 32]);
        let tablet = DeviceKey::from_seed([2; 32]);
        let mut c = credential(&tablet, 8, Role::Inspector);
        c.scope.campaigns = Some([DocId::new_campaign([5; 16])].into());
        let enrollment = Enrollment {
            hq: hq.public(),
            server: "127.0.0.1:4433".into(),
            credential: SignedCredential::issue(&hq, c),
        };
        let text = enrollment.to_string();
        assert!(text.starts_with("FS1:") && text.len() < 600, "{} chars", text.len());
        let parsed: Enrollment = text.parse().unwrap();
        assert_eq!(parsed, enrollment);
        assert!(parsed.verify(&tablet.public(), DAY).is_ok());
        assert_eq!(parsed.verify(&hq.public(), DAY), Err(CredentialError::WrongDevice));
        assert!("FS1:!!!".parse::<Enrollment>().is_err());
        assert!("hello".parse::<Enrollment>().is_err());
    }

    #[test]
    fn scope_limits_campaigns_and_enterprises() {
        let campaign = DocId::new_campaign([1; 16]);
        let other = DocId::new_campaign([2; 16]);
        let mine: CreditCode = "91640200MA76XYW123".parse().unwrap();
        let theirs: CreditCode = "91640200MA76XYW124".parse().unwrap();
        let scope = Scope { campaigns: Some([campaign.clone()].into()), enterprises: Some([mine.clone()].into()) };
        assert!(scope.allows(&campaign, Some(&mine)));
        assert!(!scope.allows(&campaign, Some(&theirs)));
        assert!(!scope.allows(&other, Some(&mine)));
        assert!(!scope.allows(&campaign, None));
        assert!(Scope::default().allows(&other, None));
    }
}
