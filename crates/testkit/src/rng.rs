//! A seeded pseudo-random sequence for tests and examples whose runs must replay: a failure
//! prints nothing random, and two runs of an example compare.

/// Xorshift64: enough to pick words, rooms and messages; no dependency, no quality claims.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A sequence starting from `seed` (not 0: xorshift would stay at 0).
    pub fn new(seed: u64) -> SeededRng {
        SeededRng(seed.max(1))
    }

    /// The next number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
