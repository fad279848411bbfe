//! Enrollment across real processes: the server binary generates HQ's key
//! and issues a credential; the field client's store imports it.

use std::process::Command;

use field_client::{Store, StoreError};
use sync_core::credential::{CredentialError, Enrollment, Role};

fn server(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fieldsync-server")).arg("--data").arg(data).args(args).output().unwrap()
}

#[test]
fn hq_issues_a_credential_the_device_enrolls_with() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("hq");
    let device = Store::init(&dir.path().join("tablet"), "张三").unwrap();
    let other = Store::init(&dir.path().join("other"), "李四").unwrap();

    let key = String::from_utf8(server(&data, &["key"]).stdout).unwrap();
    assert_eq!(key.trim().len(), 64);
    let out = server(&data, &["issue", "--device", &device.public_key().to_string(), "--name", "张三", "--days", "30"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let code = String::from_utf8(out.stdout).unwrap();
    let enrollment: Enrollment = code.trim().parse().unwrap();
    assert_eq!(enrollment.hq.to_string(), key.trim(), "the key is generated once and kept");

    let credential = device.enroll(&enrollment).unwrap();
    assert_eq!((credential.role, credential.serial), (Role::Inspector, 1));
    assert_eq!(device.enrollment().unwrap().unwrap(), enrollment);

    // A credential issued to another device is refused by this one.
    assert!(matches!(other.enroll(&enrollment), Err(StoreError::Credential(CredentialError::WrongDevice))));

    // Bad requests are refused with a reason and issue nothing.
    let out = server(&data, &["issue", "--device", "not-a-key", "--name", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("设备公钥格式无效"));
    let out = server(
        &data,
        &["issue", "--device", &other.public_key().to_string(), "--name", "某企业", "--role", "enterprise"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("企业凭证必须"));
    let out = server(&data, &["issue", "--device", &other.public_key().to_string(), "--name", "李四"]);
    let second: Enrollment = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();
    assert_eq!(second.credential.credential().serial, 2, "refused requests used no serial");
}
