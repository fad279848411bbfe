//! Failures of the file system and of SQLite told in Chinese: every error a
//! person can see names what went wrong in their language, not the system's
//! English message.

use std::io::ErrorKind;

/// What went wrong with a file, in words.
pub fn io(e: &std::io::Error) -> String {
    let what = match e.kind() {
        ErrorKind::NotFound => "文件或目录不存在",
        ErrorKind::PermissionDenied => "没有权限",
        ErrorKind::AlreadyExists => "文件已存在",
        ErrorKind::StorageFull => "磁盘已满",
        ErrorKind::QuotaExceeded => "超出磁盘配额",
        ErrorKind::ReadOnlyFilesystem => "存储设备只读",
        ErrorKind::IsADirectory => "这是一个目录，不是文件",
        ErrorKind::NotADirectory => "路径中有一段不是目录",
        ErrorKind::DirectoryNotEmpty => "目录不为空",
        ErrorKind::InvalidFilename => "文件名无效",
        ErrorKind::FileTooLarge => "文件过大",
        ErrorKind::ResourceBusy => "文件正被其他程序占用",
        ErrorKind::CrossesDevices => "不能跨存储设备移动文件",
        ErrorKind::UnexpectedEof => "文件不完整",
        ErrorKind::InvalidData => "文件内容无效",
        ErrorKind::BrokenPipe => "输出已被关闭",
        ErrorKind::Interrupted => "操作被中断",
        ErrorKind::TimedOut => "操作超时",
        ErrorKind::OutOfMemory => "内存不足",
        _ => {
            return match e.raw_os_error() {
                Some(code) => format!("读写出错（系统错误码 {code}）"),
                None => "读写出错".to_owned(),
            };
        }
    };
    what.to_owned()
}

/// What went wrong with the local database, in words.
pub fn db(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    match e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => "数据库正被其他程序使用，请稍后再试".to_owned(),
            ErrorCode::DiskFull => "磁盘已满".to_owned(),
            ErrorCode::ReadOnly => "数据库只读（没有写权限，或存储设备只读）".to_owned(),
            ErrorCode::CannotOpen => "无法打开数据库文件".to_owned(),
            ErrorCode::PermissionDenied => "没有权限读写数据库文件".to_owned(),
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => "数据库文件已损坏".to_owned(),
            ErrorCode::SystemIoFailure => "读写存储设备出错".to_owned(),
            ErrorCode::OutOfMemory => "内存不足".to_owned(),
            other => format!("数据库出错（{other:?}）"),
        },
        _ => "数据库读写出错".to_owned(),
    }
}
