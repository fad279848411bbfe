//! Files a person asks for (exports, bundles): written whole or not at all,
//! and never over a file that is already there unless they say so.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::{StoreError, words};

/// Writes `bytes` to `path`: refused if something is there already, unless
/// `overwrite`; written to a temporary file beside it, flushed to disk and
/// renamed, so a crash or a full disk never leaves half a file at `path`.
/// A folder the path names that is not there yet is made.
pub fn write_new(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), StoreError> {
    let shown = path.display();
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(StoreError::Invalid(format!("{shown} 是一个目录，请给出文件名"))),
        Ok(_) if !overwrite => {
            return Err(StoreError::Invalid(format!("{shown} 已存在，没有覆盖它；确需覆盖请加 --force")));
        }
        _ => {}
    }
    let name = path.file_name().ok_or_else(|| StoreError::Invalid(format!("{shown} 不是文件路径")))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(".{}.{}.partial", name.to_string_lossy(), std::process::id()));
    fs::create_dir_all(dir).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!("{} 已存在，但不是目录", dir.display()),
            _ => words::io(&e),
        };
        StoreError::Invalid(format!("无法写入 {shown}：{why}"))
    })?;
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is.
        File::open(dir).and_then(|d| d.sync_all())
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        StoreError::Invalid(format!("无法写入 {shown}：{}", words::io(&e)))
    })
}
