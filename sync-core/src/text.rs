//! Text hygiene: what text a person typed may contain, wherever it enters
//! (a document, a credential's name). One line (a name, a title, a place)
//! or free text (a description, a note); both NFC-normalised, without
//! control characters, bidirectional overrides or zero-width characters,
//! which can make two names look alike or a name read as something else
//! (`张三\u{202e}gnp.exe`). The schemas' formats `line` and `text` are these.

use unicode_normalization::{UnicodeNormalization, is_nfc};

/// Which text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One line: no control character at all.
    Line,
    /// Free text: line breaks and tabs allowed.
    Text,
}

/// Why text was refused (Chinese, shown to people).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextError {
    /// A control character (a line break, in one line).
    #[error("含有控制字符 U+{0:04X}")]
    Control(u32),
    /// A bidirectional override or mark, which reorders what is shown.
    #[error("含有双向文字控制字符 U+{0:04X}（会改变文字的显示顺序）")]
    Bidi(u32),
    /// A zero-width or invisible character.
    #[error("含有不可见字符 U+{0:04X}")]
    Invisible(u32),
    /// Not in Unicode normalization form C.
    #[error("未按 Unicode NFC 规范化")]
    NotNfc,
}

/// Checks `s` as text of `kind`.
pub fn check(s: &str, kind: Kind) -> Result<(), TextError> {
    for c in s.chars() {
        let code = u32::from(c);
        let allowed = kind == Kind::Text && matches!(c, '\n' | '\r' | '\t');
        if c.is_control() && !allowed {
            return Err(TextError::Control(code));
        }
        if matches!(code, 0x061C | 0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069) {
            return Err(TextError::Bidi(code));
        }
        if matches!(code, 0x00AD | 0x180E | 0x200B..=0x200D | 0x2060..=0x2064 | 0xFEFF) {
            return Err(TextError::Invisible(code));
        }
    }
    if !is_nfc(s) {
        return Err(TextError::NotNfc);
    }
    Ok(())
}

/// Whether two names name the same person: compared after compatibility
/// normalisation (NFKC: full-width letters as their plain forms), without
/// whitespace, control, bidirectional or invisible characters, so
/// `王五\u{200b}` and `王 五` are 王五. Never a raw string compare.
pub fn same_person(a: &str, b: &str) -> bool {
    let key = |s: &str| -> String {
        s.nfkc().filter(|c| !c.is_whitespace() && check(c.encode_utf8(&mut [0; 4]), Kind::Line).is_ok()).collect()
    };
    let (a, b) = (key(a), key(b));
    !a.is_empty() && a == b
}

/// `s` in normalization form C, as text typed on a device is stored.
pub fn normalize(s: &str) -> String {
    if is_nfc(s) { s.to_owned() } else { s.nfc().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_hide_or_reorder_text_are_refused() {
        assert_eq!(check("张三", Kind::Line), Ok(()));
        assert_eq!(check("张三\u{202e}gnp.exe", Kind::Line), Err(TextError::Bidi(0x202E)));
        assert_eq!(check("王五\u{200b}", Kind::Line), Err(TextError::Invisible(0x200B)));
        assert_eq!(check("a\0b", Kind::Line), Err(TextError::Control(0)));
        assert_eq!(check("第一行\n第二行", Kind::Line), Err(TextError::Control(0x0A)));
        assert_eq!(check("第一行\n第二行\t", Kind::Text), Ok(()));
        assert_eq!(check("a\u{1b}[31m", Kind::Text), Err(TextError::Control(0x1B)));
    }

    #[test]
    fn text_is_stored_in_normalization_form_c() {
        let decomposed = "Cafe\u{301}";
        assert_eq!(check(decomposed, Kind::Line), Err(TextError::NotNfc));
        let composed = normalize(decomposed);
        assert_eq!(composed, "Caf\u{e9}");
        assert_eq!(check(&composed, Kind::Line), Ok(()));
    }
}
