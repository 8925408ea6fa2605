//! A small deterministic random number generator and a Zipf sampler over room ranks.
//!
//! The benchmark needs neither cryptographic quality nor a dependency for this: SplitMix64 is
//! enough to pick rooms, and the Zipf sampler is an inverse-CDF table searched by bisection.

/// SplitMix64: a tiny, fast, seedable 64-bit generator (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`; equal seeds give equal sequences.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1), from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf's law over ranks `0..n`: rank `k` is drawn with probability proportional to
/// `1 / (k + 1)^exponent`. Rank 0 is the hottest.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cdf[k]` is the probability of drawing a rank ≤ k; the last entry is 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// The exponent the benchmarks use (classic Zipf). performance.md does not fix one.
    pub const EXPONENT: f64 = 1.0;

    /// A sampler over `n` ranks (at least one) with the given exponent.
    pub fn new(n: usize, exponent: f64) -> Zipf {
        let n = n.max(1);
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 0..n {
            total += 1.0 / ((k + 1) as f64).powf(exponent);
            cdf.push(total);
        }
        for value in &mut cdf {
            *value /= total;
        }
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Zipf { cdf }
    }

    /// The probability of rank `k`.
    pub fn probability(&self, k: usize) -> f64 {
        match k {
            0 => self.cdf.first().copied().unwrap_or(0.0),
            _ if k < self.cdf.len() => self.cdf[k] - self.cdf[k - 1],
            _ => 0.0,
        }
    }

    /// Draws a rank in `0..n`.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        // The first rank whose cumulative probability exceeds u.
        self.cdf
            .partition_point(|&p| p <= u)
            .min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_in_range_and_follow_the_law() {
        let zipf = Zipf::new(10_000, Zipf::EXPONENT);
        let mut rng = Rng::new(7);
        let mut counts = vec![0u64; zipf.cdf.len()];
        let draws = 200_000u64;
        for _ in 0..draws {
            let k = zipf.sample(&mut rng);
            counts[k] += 1;
        }
        // Rank 0 has probability 1/H(10000) ≈ 0.1021; rank 1 half of that.
        let p0 = counts[0] as f64 / draws as f64;
        let p1 = counts[1] as f64 / draws as f64;
        assert!((p0 - zipf.probability(0)).abs() < 0.005, "p0 = {p0}");
        assert!((p1 - zipf.probability(1)).abs() < 0.005, "p1 = {p1}");
        assert!((zipf.probability(0) - 0.1021).abs() < 0.001);
        // The tail is reached too.
        assert!(counts[5_000..].iter().sum::<u64>() > 0);
    }

    #[test]
    fn one_rank_always_draws_it() {
        let zipf = Zipf::new(1, Zipf::EXPONENT);
        let mut rng = Rng::new(1);
        assert!((0..100).all(|_| zipf.sample(&mut rng) == 0));
    }

    #[test]
    fn uniform_floats_are_in_the_unit_interval() {
        let mut rng = Rng::new(42);
        assert!((0..10_000).all(|_| {
            let x = rng.next_f64();
            (0.0..1.0).contains(&x)
        }));
    }
}
