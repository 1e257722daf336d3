//! A tiny JSON writer for status lines and hello messages (no serde: a handful of flat
//! objects don't earn a dependency). Numbers and strings follow `control::text`.

use std::fmt::Write;

/// A JSON string literal (the one quoting rule, `control::text`).
pub fn escape(s: &str) -> String {
    crate::control::text::json_string(s)
}

/// `[x,y,w,h]`.
pub fn rect(r: crate::camera::Rect) -> String {
    array([r.x, r.y, r.w, r.h].map(|v| v.to_string()))
}

/// Builds one JSON object: `Obj::new().num("a", 1).str("b", "x").finish()`.
#[derive(Default)]
pub struct Obj {
    buf: String,
}

impl Obj {
    pub fn new() -> Self {
        Obj { buf: String::from("{") }
    }
    fn key(&mut self, k: &str) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        self.buf.push_str(&escape(k));
        self.buf.push(':');
    }
    pub fn num(mut self, k: &str, v: impl Into<f64>) -> Self {
        self.key(k);
        let v = v.into();
        // The one number format (`control::text::num`), shared with replies and the state file.
        if v.is_finite() {
            self.buf.push_str(&crate::control::text::num(v));
        } else {
            self.buf.push_str("null");
        }
        self
    }
    pub fn int(mut self, k: &str, v: u64) -> Self {
        self.key(k);
        let _ = write!(self.buf, "{v}");
        self
    }
    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        self.buf.push_str(&escape(v));
        self
    }
    pub fn opt_str(self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(s) => self.str(k, s),
            None => self.raw(k, "null"),
        }
    }
    pub fn bool(self, k: &str, v: bool) -> Self {
        self.raw(k, if v { "true" } else { "false" })
    }
    /// A value that is already JSON (a nested object or array).
    pub fn raw(mut self, k: &str, json: &str) -> Self {
        self.key(k);
        self.buf.push_str(json);
        self
    }
    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

pub fn array(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let s = Obj::new()
            .int("a", 1)
            .num("b", 2.5)
            .num("n", f64::NAN)
            .str("s", "q\"\n\u{1}")
            .bool("t", true)
            .raw("arr", &array(["1".to_string(), "2".to_string()]))
            .finish();
        assert_eq!(s, r#"{"a":1,"b":2.5,"n":null,"s":"q\"\n\u0001","t":true,"arr":[1,2]}"#);
    }
}
