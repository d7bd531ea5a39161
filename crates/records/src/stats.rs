//! Small-sample statistics over seeds: a mean and its 95% confidence
//! interval from Student's t, since a grid cell has only a handful of seeds
//! and the normal 1.96 would understate the uncertainty.

/// A mean over samples and the half-width of its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    /// NaN when there is no finite sample.
    pub mean: f64,
    /// `t(0.975, n-1) · s / √n`; 0 for one sample, NaN for none.
    pub half_width: f64,
    /// Finite samples behind the mean.
    pub n: usize,
}

/// Mean of the finite samples and its two-sided 95% confidence half-width
/// from Student's t with `n - 1` degrees of freedom. Non-finite samples (a
/// trial whose evaluation failed) are left out rather than poisoning the mean.
pub fn mean_ci95(samples: &[f64]) -> MeanCi {
    let finite: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    let n = finite.len();
    if n == 0 {
        return MeanCi {
            mean: f64::NAN,
            half_width: f64::NAN,
            n,
        };
    }
    let mean = finite.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return MeanCi {
            mean,
            half_width: 0.0,
            n,
        };
    }
    let var = finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    MeanCi {
        mean,
        half_width: t_critical_95(n - 1) * (var / n as f64).sqrt(),
        n,
    }
}

/// Two-sided 95% critical value of Student's t (the 0.975 quantile) for
/// `df` degrees of freedom: tabulated to 30, then interpolated linearly in
/// `1/df` between 30, 40, 60, 120 and infinity (error below 1e-3). NaN for
/// `df = 0`.
pub fn t_critical_95(df: usize) -> f64 {
    const SMALL: [f64; 30] = [
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010,
        2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739,
        2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
    ];
    // (df, t); the last row is df = infinity, 1/df = 0.
    const LARGE: [(f64, f64); 5] = [
        (30.0, 2.0423),
        (40.0, 2.0211),
        (60.0, 2.0003),
        (120.0, 1.9799),
        (f64::INFINITY, 1.9600),
    ];
    match df {
        0 => f64::NAN,
        1..=30 => SMALL[df - 1],
        _ => {
            let inv = 1.0 / df as f64;
            for pair in LARGE.windows(2) {
                let ((d0, t0), (d1, t1)) = (pair[0], pair[1]);
                let (i0, i1) = (1.0 / d0, 1.0 / d1);
                if inv <= i0 && inv >= i1 {
                    return t1 + (t0 - t1) * (inv - i1) / (i0 - i1);
                }
            }
            1.96
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_values_match_the_table() {
        // Any printed t-table: t(0.975; 1) = 12.706, t(0.975; 2) = 4.303,
        // t(0.975; 10) = 2.228, t(0.975; 120) = 1.980.
        assert!(close(t_critical_95(1), 12.706, 1e-3));
        assert!(close(t_critical_95(2), 4.303, 1e-3));
        assert!(close(t_critical_95(10), 2.228, 1e-3));
        assert!(close(t_critical_95(120), 1.980, 1e-3));
        // Interpolated: t(0.975; 50) = 2.0086, t(0.975; 1000) = 1.9623.
        assert!(close(t_critical_95(50), 2.0086, 2e-3));
        assert!(close(t_critical_95(1000), 1.9623, 2e-3));
        assert!(t_critical_95(0).is_nan());
        // Decreasing in df.
        for df in 1..500 {
            assert!(t_critical_95(df + 1) <= t_critical_95(df), "df {df}");
        }
    }

    #[test]
    fn mean_ci_by_hand() {
        // [0.5, 0.6, 0.7]: mean 0.6, s = 0.1, se = 0.1/√3 = 0.057735,
        // half-width = 4.3027 · 0.057735 = 0.24842.
        let ci = mean_ci95(&[0.5, 0.6, 0.7]);
        assert_eq!(ci.n, 3);
        assert!(close(ci.mean, 0.6, 1e-12));
        assert!(close(ci.half_width, 0.24842, 1e-4), "{ci:?}");
        // [1, 3]: s = √2, se = 1, half-width = t(1) = 12.706.
        let ci = mean_ci95(&[1.0, 3.0]);
        assert!(close(ci.mean, 2.0, 1e-12) && close(ci.half_width, 12.706, 1e-3));
    }

    #[test]
    fn degenerate_samples() {
        let one = mean_ci95(&[0.42]);
        assert_eq!((one.mean, one.half_width, one.n), (0.42, 0.0, 1));
        let none = mean_ci95(&[]);
        assert!(none.mean.is_nan() && none.half_width.is_nan() && none.n == 0);
        // NaN samples are left out: [0.5, NaN, 0.7] is the mean of two.
        let ci = mean_ci95(&[0.5, f64::NAN, 0.7]);
        assert_eq!(ci.n, 2);
        assert!(close(ci.mean, 0.6, 1e-12));
        assert!(close(ci.half_width, 12.7062 * 0.1, 1e-9));
        // Identical samples: zero width.
        assert!(mean_ci95(&[0.8, 0.8, 0.8]).half_width < 1e-12);
    }
}
