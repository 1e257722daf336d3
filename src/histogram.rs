//! A latency histogram with fixed, roughly logarithmic buckets (100 µs … ~60 s, 10% steps):
//! O(1) to record, no allocation after creation, percentiles within one bucket's width (≤10%),
//! and the same buckets can be exported as Prometheus `le` buckets.

#[derive(Clone, Debug)]
pub struct Histogram {
    bounds: Vec<u64>,
    counts: Vec<u64>,
    count: u64,
    sum: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        let mut bounds = Vec::new();
        let mut b = 100.0f64;
        while b < 60e6 {
            bounds.push(b.round() as u64);
            b *= 1.1;
        }
        let n = bounds.len() + 1; // the last bucket is +Inf
        Histogram { bounds, counts: vec![0; n], count: 0, sum: 0, max: 0 }
    }

    pub fn record(&mut self, v_us: u64) {
        let i = self.bounds.partition_point(|&b| b < v_us);
        self.counts[i] += 1;
        self.count += 1;
        self.sum += v_us;
        self.max = self.max.max(v_us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> u64 {
        self.sum
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum as f64 / self.count as f64 }
    }

    /// The upper bound of the bucket holding the `q` quantile (0..=1), capped at the maximum
    /// seen; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return self.bounds.get(i).copied().unwrap_or(self.max).min(self.max);
            }
        }
        self.max
    }

    /// (upper bound µs, cumulative count) for every bucket, +Inf last (bound `None`).
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let mut acc = 0;
        self.counts.iter().enumerate().map(move |(i, &c)| {
            acc += c;
            (self.bounds.get(i).copied(), acc)
        })
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 10); // 10 µs … 100 ms, uniform
        }
        for (q, truth) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = h.quantile(q) as f64;
            assert!(got >= truth && got <= truth * 1.11, "q{q}: {got} vs {truth}");
        }
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.count(), 10_000);
        assert!((h.mean() - 50_005.0).abs() < 1.0);
    }

    #[test]
    fn empty_small_and_huge_values() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        h.record(0);
        h.record(u64::MAX / 4);
        assert_eq!(h.quantile(0.5), 100, "0 lands in the first bucket, reported by its bound");
        assert_eq!(h.quantile(1.0), u64::MAX / 4);
        let (bound, total) = h.cumulative().last().unwrap();
        assert_eq!((bound, total), (None, 2));
    }

    #[test]
    fn merge_adds_counts() {
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        a.record(1000);
        b.record(3000);
        a.merge(&b);
        assert_eq!((a.count(), a.sum(), a.max()), (2, 4000, 3000));
    }
}
