//! FieldSync's fuzz targets (cargo-fuzz). The body of each target is in
//! [`targets`], which the stable regression test
//! (`sync-core/tests/fuzz_regressions.rs`) includes as well.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

pub mod targets;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs one target's body on `data`. `batch::decode` contains the panics of
/// Automerge's parsers by design (`catch_unwind`), so the abort-on-panic
/// hook libfuzzer-sys installs would report contained panics as crashes.
/// Here a panic is only remembered when it happens, and the process aborts
/// (a crash for libFuzzer, with the panic's message and place printed)
/// only when a panic escapes the body.
pub fn run(body: fn(&[u8]) -> targets::Reached, data: &[u8]) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let backtrace = std::backtrace::Backtrace::capture();
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{info}\n{backtrace}")));
        }));
    });
    LAST_PANIC.with(|last| last.borrow_mut().take());
    if panic::catch_unwind(AssertUnwindSafe(|| body(data))).is_err() {
        let last = LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_default();
        eprintln!("==fieldsync-fuzz== panic escaped the decoder: {last}");
        std::process::abort();
    }
}
