//! The simulations' seeded, dependency-free generator (xorshift64*), shared by
//! `judge_sim.rs`, `latency_sim.rs` and the policy's unit tests (`#[path]`-included: not an
//! example of its own).
// Each simulation draws what it needs: binomials (error counts) or normals (latencies).
#![allow(dead_code)]

/// xorshift64*, seeded.
pub struct Rng(u64);

impl Rng {
    /// A generator for scenario `seed` (distinct seeds, distinct streams).
    pub fn seeded(seed: u64) -> Self {
        Self(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    /// Uniform on [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Binomial(n, p) by inversion.
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        let u = self.uniform();
        let q = 1.0 - p;
        let mut pk = q.powf(n as f64);
        let mut cdf = pk;
        let mut k = 0;
        while cdf < u && k < n {
            pk *= (n - k) as f64 / (k + 1) as f64 * p / q;
            k += 1;
            cdf += pk;
        }
        k
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
