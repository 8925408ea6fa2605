//! Latency histograms (HDR, microseconds), the figures a run produces, and the median and
//! spread of a figure over repeated runs.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The largest latency a histogram records, in microseconds (a minute); larger ones saturate.
pub const LATENCY_MAX_US: u64 = 60_000_000;

/// A latency histogram in microseconds with three significant figures.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    /// An empty histogram from 1 µs to [`LATENCY_MAX_US`].
    pub fn new() -> Latencies {
        // Reason for `expect`: the bounds are constants that hdrhistogram accepts (low ≥ 1,
        // high ≥ 2 × low, 3 significant figures ≤ 5), so construction cannot fail.
        let histogram = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
            .expect("1 µs ..= 60 s with 3 significant figures are valid histogram bounds");
        Latencies { histogram }
    }

    /// Records one latency (saturating at [`LATENCY_MAX_US`], at least 1 µs).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(LATENCY_MAX_US)
            .clamp(1, LATENCY_MAX_US);
        self.histogram.saturating_record(micros);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Both have the same bounds, so adding cannot fail; ignore the impossible error.
        let _ = self.histogram.add(&other.histogram);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at `quantile` (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The largest latency in milliseconds; 0 when empty.
    pub fn max_ms(&self) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        self.histogram.max() as f64 / 1000.0
    }

    /// HdrHistogram's percentile distribution: (quantile, latency in ms) at steps that halve
    /// the distance to 100% (`ticks_per_half_distance` points per halving), up to the largest
    /// value. Empty when nothing was recorded.
    pub fn percentile_distribution(&self, ticks_per_half_distance: u32) -> Vec<(f64, f64)> {
        if self.histogram.is_empty() {
            return Vec::new();
        }
        self.histogram
            .iter_quantiles(ticks_per_half_distance)
            .map(|step| {
                (
                    step.quantile_iterated_to(),
                    step.value_iterated_to() as f64 / 1000.0,
                )
            })
            .collect()
    }

    /// p50, p99 and p99.9 in milliseconds.
    pub fn percentiles_ms(&self) -> (f64, f64, f64) {
        (
            self.quantile_ms(0.50),
            self.quantile_ms(0.99),
            self.quantile_ms(0.999),
        )
    }
}

/// One measured number of one run, named so that repeated runs can be lined up.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What it is, unique within a workload (`B1 parlor throughput`).
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`cmd/s`, `ms`, `×`, `MiB`).
    pub unit: &'static str,
}

impl Figure {
    /// A figure.
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit,
        }
    }
}

/// The median, minimum and maximum of one figure over runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// The figure's name.
    pub name: String,
    /// Its unit.
    pub unit: &'static str,
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many runs produced it.
    pub runs: usize,
}

/// Lines up the figures of several runs by name (in first-seen order) and summarises each.
pub fn spreads(runs: &[Vec<Figure>]) -> Vec<Spread> {
    let mut names: Vec<(String, &'static str)> = Vec::new();
    for run in runs {
        for figure in run {
            if !names.iter().any(|(name, _)| name == &figure.name) {
                names.push((figure.name.clone(), figure.unit));
            }
        }
    }
    names
        .into_iter()
        .filter_map(|(name, unit)| {
            let mut values: Vec<f64> = runs
                .iter()
                .flat_map(|run| run.iter().filter(|f| f.name == name).map(|f| f.value))
                .collect();
            values.sort_by(f64::total_cmp);
            let median = median_of_sorted(&values)?;
            Some(Spread {
                name,
                unit,
                median,
                min: *values.first()?,
                max: *values.last()?,
                runs: values.len(),
            })
        })
        .collect()
}

/// The median of sorted values; `None` when empty.
pub fn median_of_sorted(values: &[f64]) -> Option<f64> {
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => values.get(n / 2).copied(),
        _ => Some((values.get(n / 2 - 1)? + values.get(n / 2)?) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut latencies = Latencies::new();
        for micros in 1..=1000u64 {
            latencies.record(Duration::from_micros(micros));
        }
        let (p50, p99, p999) = latencies.percentiles_ms();
        assert!((p50 - 0.5).abs() < 0.01, "{p50}");
        assert!((p99 - 0.99).abs() < 0.01, "{p99}");
        assert!((p999 - 0.999).abs() < 0.01, "{p999}");
        assert_eq!(latencies.count(), 1000);
        latencies.record(Duration::from_secs(3600));
        assert!((latencies.max_ms() - 60_000.0).abs() < 100.0);
    }

    #[test]
    fn spreads_take_median_min_and_max_by_name() {
        let runs = vec![
            vec![Figure::new("a", 3.0, "x"), Figure::new("b", 1.0, "y")],
            vec![Figure::new("a", 1.0, "x")],
            vec![Figure::new("a", 2.0, "x"), Figure::new("b", 3.0, "y")],
        ];
        let spreads = spreads(&runs);
        assert_eq!(spreads.len(), 2);
        assert_eq!(spreads[0].name, "a");
        assert_eq!(
            (spreads[0].median, spreads[0].min, spreads[0].max),
            (2.0, 1.0, 3.0)
        );
        assert_eq!(spreads[1].median, 2.0);
        assert_eq!(spreads[1].runs, 2);
    }
}
