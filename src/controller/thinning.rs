//! Frame thinning: at most `fps` frames a second go to the encoder, by capture time. A frame
//! is taken when it is no earlier than a quarter period before its slot, so a camera at the
//! rate (with jitter) loses nothing and a faster one (libcamera 0.4's virtual camera fills
//! requests as fast as they come) is thinned evenly to the rate.

#[derive(Clone, Debug, Default)]
pub struct FrameThinning {
    due_us: Option<u64>,
}

impl FrameThinning {
    pub fn take(&mut self, capture_us: u64, fps: u32) -> bool {
        let p = 1_000_000 / fps.max(1) as u64;
        let due = self.due_us.unwrap_or(0);
        if capture_us + p / 4 < due {
            return false;
        }
        self.due_us = Some(if capture_us > due + p { capture_us + p } else { due + p });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::FrameThinning;

    fn kept(captures: impl Iterator<Item = u64>, fps: u32) -> Vec<u64> {
        let mut r = FrameThinning::default();
        captures.filter(|&t| r.take(t, fps)).collect()
    }

    #[test]
    fn a_camera_at_the_rate_loses_nothing_even_with_jitter() {
        let p = 33_333;
        let times: Vec<u64> = (0..300u64).map(|i| 1_000_000 + i * p + (i * 7919 % 13) * 500).collect();
        assert_eq!(kept(times.iter().copied(), 30).len(), 300);
        // A slower camera is never thinned either.
        assert_eq!(kept((0..50u64).map(|i| i * 2 * p + (i % 3) * 1000), 30).len(), 50);
    }

    #[test]
    fn a_faster_camera_is_thinned_to_the_rate() {
        // 60 frames/s for 10 s, asked for 15: about 150 kept, evenly.
        let k = kept((0..600u64).map(|i| 5_000_000 + i * 16_667), 15);
        assert!((149..=151).contains(&k.len()), "{}", k.len());
        assert!(k.windows(2).all(|w| (w[1] - w[0]).abs_diff(66_667) <= 16_667), "even spacing");
    }
}
