//! The two lexical rules every line pieyes writes follows — replies, `watch` events, the JSON
//! in them and the state file: one number format and one quoting rule. The viewer's parser
//! (www/control.js `parseFields`) reads exactly this.

use std::fmt::Write;

/// A number: at most 3 decimals, no trailing zeros, no `-0` ("0.5", "2", "-0.125").
/// Non-finite values have no spelling here; callers decide (JSON writes `null`).
pub fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A JSON string literal: `"…"` with `"`, `\` and control characters escaped.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `key=value` value: bare when it is one plain word, else a JSON string. So `path=/a/b`
/// stays as it is and `path="/my robot/state.conf"` survives the space.
pub fn value(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '=' | '\''));
    if plain { s.to_string() } else { json_string(s) }
}

/// The inverse of `value` for one token, for tests and tools: a JSON string or a bare word.
pub fn unquote(s: &str) -> Option<String> {
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return Some(s.to_string());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_never_negative_zero() {
        for (v, s) in
            [(0.5, "0.5"), (2.0, "2"), (-0.125, "-0.125"), (-0.0001, "0"), (1.23456, "1.235"), (1e6, "1000000")]
        {
            assert_eq!(num(v), s);
        }
    }

    #[test]
    fn values_are_bare_words_or_json_strings_and_round_trip() {
        assert_eq!(value("/var/lib/pieyes/state.conf"), "/var/lib/pieyes/state.conf");
        assert_eq!(value("ok"), "ok");
        for s in ["/my robot/state.conf", "", "failing: no frames", "a=b", "q\"uote", "back\\slash", "tab\tnl\n", "é"]
        {
            let v = value(s);
            assert!(v.starts_with('"'), "{s:?} → {v}");
            assert!(!v.contains(' ') || v.starts_with('"'));
            assert_eq!(unquote(&v).as_deref(), Some(s), "{v}");
        }
        assert_eq!(unquote(r#""\u0001""#).as_deref(), Some("\u{1}"));
        assert_eq!(unquote(r#""\q""#), None);
    }
}
