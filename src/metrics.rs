//! Prometheus text exposition format (version 0.0.4), written by hand: counters, gauges and
//! histograms with labels. The daemon fills it from its own state at `/metrics`.

use std::fmt::Write;

use crate::histogram::Histogram;

#[derive(Default)]
pub struct Metrics {
    out: String,
    declared: Vec<String>,
}

fn labels(l: &[(&str, &str)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// `# HELP` and `# TYPE` once per metric family.
    fn declare(&mut self, name: &str, kind: &str, help: &str) {
        if !self.declared.iter().any(|d| d == name) {
            let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            self.declared.push(name.to_string());
        }
    }

    pub fn counter(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        self.declare(name, "counter", help);
        let _ = writeln!(self.out, "{name}{} {}", labels(l), value(v));
    }

    pub fn gauge(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        self.declare(name, "gauge", help);
        let _ = writeln!(self.out, "{name}{} {}", labels(l), value(v));
    }

    /// A histogram of µs values, exported in seconds. Every `step`-th bucket of the internal
    /// histogram is written (its bounds are exact bucket edges, so the counts are exact).
    pub fn histogram_us(&mut self, name: &str, help: &str, l: &[(&str, &str)], h: &Histogram, step: usize) {
        self.declare(name, "histogram", help);
        let step = step.max(1);
        let with_le = |le: &str| {
            let mut all: Vec<(&str, &str)> = l.to_vec();
            all.push(("le", le));
            labels(&all)
        };
        for (i, (bound, cum)) in h.cumulative().enumerate() {
            let Some(b) = bound else { break };
            if i % step == step - 1 {
                let _ = writeln!(self.out, "{name}_bucket{} {cum}", with_le(&value(b as f64 / 1e6)));
            }
        }
        let _ = writeln!(self.out, "{name}_bucket{} {}", with_le("+Inf"), h.count());
        let _ = writeln!(self.out, "{name}_sum{} {}", labels(l), value(h.sum() as f64 / 1e6));
        let _ = writeln!(self.out, "{name}_count{} {}", labels(l), h.count());
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// This process's resident set size in bytes (from /proc/self/statm).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * crate::sys::page_size() as u64
}

/// A parsed sample: (name, labels, value). For tests and tools reading `/metrics` back.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Parse the text format back (strict enough to catch malformed output).
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let err = |m: &str| format!("line {}: {m}: {line:?}", n + 1);
        let (head, v) = line.rsplit_once(' ').ok_or_else(|| err("no value"))?;
        let v: f64 = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            _ => v.parse().map_err(|_| err("bad value"))?,
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').ok_or_else(|| err("unclosed labels"))?;
                let mut labels = Vec::new();
                for pair in body.split(',').filter(|p| !p.is_empty()) {
                    let (k, val) = pair.split_once('=').ok_or_else(|| err("bad label"))?;
                    let val =
                        val.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or_else(|| err("unquoted label"))?;
                    labels.push((k.to_string(), val.to_string()));
                }
                (name.to_string(), labels)
            }
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            return Err(err("bad metric name"));
        }
        out.push((name, labels, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_parses_back_counters_gauges_and_histograms() {
        let mut h = Histogram::new();
        for v in [150u64, 900, 12_000, 40_000] {
            h.record(v);
        }
        let mut m = Metrics::new();
        m.counter("pieyes_frames_total", "Frames.", &[("eye", "0")], 42.0);
        m.counter("pieyes_frames_total", "Frames.", &[("eye", "1")], 41.0);
        m.gauge("pieyes_rss_bytes", "RSS.", &[], 1e6);
        m.histogram_us("pieyes_latency_seconds", "Latency.", &[("eye", "0")], &h, 5);
        let text = m.finish();
        assert_eq!(text.matches("# TYPE pieyes_frames_total counter").count(), 1, "declared once");
        let samples = parse(&text).unwrap();
        assert!(samples.contains(&("pieyes_frames_total".into(), vec![("eye".into(), "1".into())], 41.0)));
        let buckets: Vec<&Sample> = samples.iter().filter(|s| s.0 == "pieyes_latency_seconds_bucket").collect();
        let counts: Vec<f64> = buckets.iter().map(|s| s.2).collect();
        assert!(counts.windows(2).all(|w| w[1] >= w[0]), "cumulative: {counts:?}");
        assert_eq!(buckets.last().unwrap().1.last().unwrap(), &("le".to_string(), "+Inf".to_string()));
        assert_eq!(*counts.last().unwrap(), 4.0);
        let count = samples.iter().find(|s| s.0 == "pieyes_latency_seconds_count").unwrap().2;
        let sum = samples.iter().find(|s| s.0 == "pieyes_latency_seconds_sum").unwrap().2;
        assert_eq!((count, (sum * 1e6).round()), (4.0, 53_050.0));
        // Each bucket bound counts exactly the values at or under it.
        for s in &buckets {
            let le = &s.1.iter().find(|(k, _)| k == "le").unwrap().1;
            if le != "+Inf" {
                let bound: f64 = le.parse().unwrap();
                let truth = [150.0, 900.0, 12_000.0, 40_000.0].iter().filter(|&&v| v / 1e6 <= bound + 1e-12).count();
                assert_eq!(s.2 as usize, truth, "le={le}");
            }
        }
    }

    #[test]
    fn parse_rejects_garbage_and_escapes_labels() {
        assert!(parse("metric{a=\"b\" 1").is_err());
        assert!(parse("bad name 1").is_err());
        assert!(parse("x one").is_err());
        let mut m = Metrics::new();
        m.gauge("g", "h", &[("path", "a\"b")], 1.0);
        assert!(m.finish().contains("path=\"a\\\"b\""));
        assert!(rss_bytes() > 1_000_000);
    }
}
