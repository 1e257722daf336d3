//! The viewer's files. Built into the binary (a binary copied alone to a Pi serves the viewer);
//! `--www DIR` serves them from disk instead while developing. Either way only the files of
//! the viewer are reachable: a fixed table, or regular files directly inside DIR.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Every file of `www/`, embedded. A test checks this list against the directory.
pub const EMBEDDED: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("../../www/index.html")),
    ("viewer.js", include_bytes!("../../www/viewer.js")),
    ("control.js", include_bytes!("../../www/control.js")),
    ("controls.js", include_bytes!("../../www/controls.js")),
    ("layout.js", include_bytes!("../../www/layout.js")),
    ("overlays.js", include_bytes!("../../www/overlays.js")),
    ("stamp.js", include_bytes!("../../www/stamp.js")),
    ("latency.js", include_bytes!("../../www/latency.js")),
    ("fmp4.js", include_bytes!("../../www/fmp4.js")),
    ("mse.js", include_bytes!("../../www/mse.js")),
    ("style.css", include_bytes!("../../www/style.css")),
];

pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

pub enum Source {
    Embedded,
    Dir(PathBuf),
}

impl Source {
    /// Look up a cleaned URL path (see `request::clean_path`). `/` is `index.html`.
    pub fn get(&self, clean: &str) -> Option<(Cow<'static, [u8]>, &'static str)> {
        let name = match clean.trim_start_matches('/') {
            "" => "index.html",
            n => n,
        };
        if name.contains('/') {
            return None; // the viewer is flat: no subdirectories, no listings
        }
        let body = match self {
            Source::Embedded => Cow::Borrowed(EMBEDDED.iter().find(|(n, _)| *n == name)?.1),
            Source::Dir(dir) => Cow::Owned(read_regular(&dir.join(name))?),
        };
        Some((body, content_type(name)))
    }
}

fn read_regular(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    std::fs::read(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_www_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with('.'))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn lookups() {
        let s = Source::Embedded;
        assert_eq!(s.get("/").unwrap().1, "text/html; charset=utf-8");
        assert!(s.get("/viewer.js").is_some());
        assert!(s.get("/nope.js").is_none());
        assert!(s.get("/sub/viewer.js").is_none());
        let d = Source::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("www"));
        assert_eq!(d.get("/style.css").unwrap().1, "text/css; charset=utf-8");
        assert!(d.get("/missing").is_none());
    }
}
