//! What the model tests share: a tiny deterministic PRNG (SplitMix64), so that a failing
//! sequence is replayed from its seed alone.

/// SplitMix64.
pub struct Rng(pub u64);

#[allow(dead_code)] // each test binary uses its own subset
impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with the given chance in percent.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// A fair coin.
    pub fn flag(&mut self) -> bool {
        self.next() & 1 == 1
    }
}
