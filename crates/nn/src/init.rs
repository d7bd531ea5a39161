//! Host-side parameter initialisation from a portable RNG.
//!
//! Initial weights are drawn on the host from [`ChaCha8Rng`] and uploaded, so a
//! seed gives bit-identical starting weights on every backend (Burn's device
//! RNGs differ between backends). The distributions are PyTorch's defaults
//! where the seed notebook relies on them.

use burn::tensor::{Device, Tensor, TensorData};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// Draws initial parameter values in a fixed order from one seed.
pub struct ParamRng {
    rng: ChaCha8Rng,
}

impl ParamRng {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Uniform in `[0, 1)` with 24 random bits (exactly representable in f32).
    fn unit(&mut self) -> f64 {
        f64::from(self.rng.next_u32() >> 8) / f64::from(1u32 << 24)
    }

    /// `n` values uniform in `[-bound, bound)`.
    pub fn uniform(&mut self, n: usize, bound: f64) -> Vec<f32> {
        (0..n)
            .map(|_| ((2.0 * self.unit() - 1.0) * bound) as f32)
            .collect()
    }

    /// `n` values from N(0, std²) by the Box–Muller transform.
    pub fn normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let u1 = 1.0 - self.unit(); // (0, 1]: ln is finite
            let u2 = self.unit();
            let radius = (-2.0 * u1.ln()).sqrt() * std;
            let angle = std::f64::consts::TAU * u2;
            out.push((radius * angle.cos()) as f32);
            out.push((radius * angle.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

/// A tensor of `shape` from host values.
pub fn tensor_from<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// PyTorch's `nn.Linear` default: weight and bias uniform in ±1/√fan_in
/// (`kaiming_uniform_(a = √5)` reduces to that bound).
pub fn linear_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_std(values: &[f32]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }

    #[test]
    fn normal_has_the_asked_moments() {
        let values = ParamRng::new(1).normal(40_000, 2.0);
        let (mean, std) = mean_std(&values);
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((std - 2.0).abs() < 0.05, "std {std}");
    }

    #[test]
    fn uniform_stays_in_bounds_with_the_right_spread() {
        let values = ParamRng::new(2).uniform(40_000, 0.5);
        assert!(values.iter().all(|v| (-0.5..0.5).contains(v)));
        let (_, std) = mean_std(&values);
        // Uniform on [-b, b) has std b/√3.
        assert!((std - 0.5 / 3f64.sqrt()).abs() < 0.005, "std {std}");
    }

    #[test]
    fn same_seed_same_values() {
        assert_eq!(
            ParamRng::new(3).normal(5, 1.0),
            ParamRng::new(3).normal(5, 1.0)
        );
        assert_ne!(
            ParamRng::new(3).normal(5, 1.0),
            ParamRng::new(4).normal(5, 1.0)
        );
    }
}
