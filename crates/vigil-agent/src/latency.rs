//! A latency histogram: whole units (µs or ns) in buckets that are exact up to 16 and
//! then 1/16 of a power of two wide (so a quantile is off by at most 6.25%), in fixed
//! memory.

/// Sub-buckets per power of two.
const SUB: u64 = 16;
/// Powers of two covered: up to 2^40 µs (12 days).
const POWERS: u64 = 40;

/// Counts of latencies, by bucket.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (SUB * (POWERS + 1)) as usize],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

/// The bucket of a value: below `SUB` one per value; above, `SUB` per power of two.
fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let power = 63 - u64::from(v.leading_zeros()); // 2^power <= v
    let shift = power - SUB.trailing_zeros() as u64;
    let sub = (v >> shift) - SUB; // 0..SUB
    let b = (power - SUB.trailing_zeros() as u64 + 1) * SUB + sub;
    (b as usize).min((SUB * (POWERS + 1)) as usize - 1)
}

/// The largest value of a bucket.
fn upper(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let power = b / SUB - 1 + SUB.trailing_zeros() as u64;
    let sub = b % SUB;
    let shift = power - SUB.trailing_zeros() as u64;
    ((SUB + sub + 1) << shift) - 1
}

impl Histogram {
    /// Counts one latency (µs).
    pub fn record(&mut self, us: u64) {
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.max = self.max.max(us);
        self.sum = self.sum.saturating_add(us);
    }

    /// The sum of the values counted (saturating).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// How many counted values are below `2^power` (exact: `2^power - 1` is the last
    /// value of a bucket), for `power` up to 40.
    pub fn count_below_power_of_two(&self, power: u32) -> u64 {
        if power >= 41 {
            return self.total;
        }
        if power == 0 {
            return self.counts[0];
        }
        let limit = (1u64 << power) - 1;
        self.counts[..=bucket(limit)].iter().sum()
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest latency counted (µs).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The latency that `q` (0..=1) of the counted ones do not exceed, as its bucket's
    /// upper bound (µs; never above the largest counted); 0 when none was counted.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(b).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_and_within_a_sixteenth() {
        let mut prev = 0;
        for v in (0..100_000).chain([1 << 20, (1 << 30) + 12345, u64::MAX / 2]) {
            let b = bucket(v);
            assert!(b >= prev || v > 100_000, "{v}");
            prev = b;
            assert!(
                upper(b) >= v.min(upper(bucket(u64::MAX))),
                "{v} in bucket {b}"
            );
            if (SUB..(1 << 40)).contains(&v) {
                assert!((upper(b) - v) * 16 <= v, "{v}: bucket up to {}", upper(b));
            }
            if v < SUB {
                assert_eq!(upper(b), v);
            }
        }
    }

    #[test]
    fn quantiles_of_a_known_spread() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for us in 1..=1000 {
            h.record(us);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1000);
        let p50 = h.quantile(0.5);
        assert!((500..=532).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1000);
        h.record(5_000_000);
        assert_eq!(h.quantile(1.0), 5_000_000);
        assert_eq!(h.sum(), 500_500 + 5_000_000);
    }

    #[test]
    fn counts_below_powers_of_two_are_exact() {
        let mut h = Histogram::default();
        let values = [
            0u64,
            1,
            2,
            3,
            15,
            16,
            17,
            31,
            32,
            1023,
            1024,
            1025,
            1 << 20,
            3 << 30,
        ];
        for v in values {
            h.record(v);
        }
        for power in 0..=41 {
            let want = values
                .iter()
                .filter(|&&v| power > 40 || v < (1 << power))
                .count();
            assert_eq!(h.count_below_power_of_two(power), want as u64, "2^{power}");
        }
    }
}
