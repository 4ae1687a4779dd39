//! Strings from records, labels, keys and HTTP bodies are untrusted: they are shortened by
//! characters (never by byte position, which panics inside a multi-byte character), and shown
//! with control characters escaped, so a node cannot send escape sequences to the terminal.

use std::borrow::Cow;

/// The first `n` characters of `s` (an id's short form, a commit's prefix).
pub fn abbrev(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// A digest or id shortened to 12 characters, without its `sha256:` prefix.
pub fn short_id(id: &str) -> &str {
    abbrev(id.strip_prefix("sha256:").unwrap_or(id), 12)
}

/// `s` with every control character (ESC, CR, BEL, ...) written as a `\u{..}` escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// What a node prints (a build's output, a script's), line by line, for the host's terminal:
/// every control character but the tab escaped, invalid UTF-8 replaced. `line` comes without
/// its newline.
pub fn printable_line(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A copy of `value` with every string in it made `printable`: for whole reports and records
/// about to be rendered for a terminal.
pub fn printable_all<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    fn clean(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = printable(s).into_owned(),
            serde_json::Value::Array(items) => items.iter_mut().for_each(clean),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (k, mut item) in entries {
                    clean(&mut item);
                    map.insert(printable(&k).into_owned(), item);
                }
            }
            _ => {}
        }
    }
    let mut json = serde_json::to_value(value).expect("prov's types serialize");
    clean(&mut json);
    serde_json::from_value(json).expect("escaping strings keeps the shape")
}

/// Cuts a line to `width` characters, marking the cut.
pub fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(width - 1).collect::<String>())
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn a_nodes_line_keeps_its_tabs_and_loses_its_escape_sequences() {
        assert_eq!(printable_line(b"Step 1/9\t: FROM x"), "Step 1/9\t: FROM x");
        assert_eq!(
            printable_line(b"\x1b[0m\x1b[91m   Compiling\r"),
            "\\u{1b}[0m\\u{1b}[91m   Compiling\\u{d}"
        );
        assert_eq!(printable_line(b"bad \xff byte"), "bad \u{fffd} byte");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbrev_counts_characters() {
        assert_eq!(abbrev("sha256é…", 7), "sha256é");
        assert_eq!(abbrev("ab", 12), "ab");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("ééééééééééééé"), "éééééééééééé");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\ry"), "x\\u{d}y");
    }
}
