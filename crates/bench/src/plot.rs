//! Latency percentile plots as SVG: HdrHistogram's percentile distribution of each system of a
//! run, Parlor beside its peers, on the classic axes (the x axis spreads the tail: 90%, 99%,
//! 99.9%, … are equally far apart; the y axis is the latency in milliseconds, logarithmic).
//! Drawn with plotters' SVG backend only: text is SVG text, no font files are read.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use crate::stats::Latencies;

/// The picture's size, in pixels.
const PLOT_SIZE_PIXELS: (u32, u32) = (900, 540);
/// Points per halving of the distance to 100% (HdrHistogram's usual 5).
const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// The rightmost "nines" shown: 99.999%.
const NINES_SHOWN_MAX: f64 = 5.0;
/// Series colours, in order (Parlor first).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// The x coordinate of `quantile`: its number of nines, `-log10(1 - q)` (0 at 0%, 1 at 90%,
/// 2 at 99%, …), capped at [`NINES_SHOWN_MAX`] (the 100% point lands there).
fn nines(quantile: f64) -> f64 {
    let remaining = (1.0 - quantile).max(10f64.powf(-NINES_SHOWN_MAX));
    (-remaining.log10()).clamp(0.0, NINES_SHOWN_MAX)
}

/// The label of an x coordinate: `90%`, `99.9%`, ….
fn nines_label(x: &f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.round() as usize).saturating_sub(2);
    format!("{percent:.decimals$}%")
}

/// Writes `path`: one line per (name, latencies) series, titled `title`. Series without
/// values are left out; with none at all, nothing is written and that is an error.
pub fn write_percentile_plot(
    path: &Path,
    title: &str,
    series: &[(String, &Latencies)],
) -> anyhow::Result<()> {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, latencies)| {
            let points = latencies
                .percentile_distribution(TICKS_PER_HALF_DISTANCE)
                .into_iter()
                .map(|(quantile, ms)| (nines(quantile), ms.max(0.001)))
                .collect::<Vec<_>>();
            (name.as_str(), points)
        })
        .filter(|(_, points)| !points.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(anyhow!("no latencies to plot for {title}"));
    }
    let highest_ms = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|&(_, ms)| ms))
        .fold(0.001f64, f64::max);
    let lowest_ms = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|&(_, ms)| ms))
        .fold(highest_ms, f64::min);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let root = SVGBackend::new(path, PLOT_SIZE_PIXELS).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            0f64..NINES_SHOWN_MAX,
            ((lowest_ms / 2.0)..(highest_ms * 2.0)).log_scale(),
        )
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(NINES_SHOWN_MAX as usize + 1)
        .x_label_formatter(&nines_label)
        .y_label_formatter(&|ms| format!("{ms}"))
        .draw()
        .map_err(draw_error)?;
    for (index, (name, points)) in lines.into_iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(draw_error)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    root.present().map_err(draw_error)?;
    Ok(())
}

fn draw_error<E: std::error::Error + Send + Sync + 'static>(error: E) -> anyhow::Error {
    anyhow!("drawing the plot: {error}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::Duration;

    #[test]
    fn the_x_axis_counts_nines() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.9) - 1.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0), NINES_SHOWN_MAX);
        assert_eq!(nines_label(&2.0), "99%");
        assert_eq!(nines_label(&3.0), "99.9%");
    }

    #[test]
    fn a_plot_names_every_series_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plots").join("b1-latency.svg");
        let (mut fast, mut slow) = (Latencies::new(), Latencies::new());
        for micros in 1..=2_000u64 {
            fast.record(Duration::from_micros(100 + micros));
            slow.record(Duration::from_micros(1_000 + micros * 7));
        }
        write_percentile_plot(
            &path,
            "B1 latency",
            &[("parlor".to_owned(), &fast), ("postgres".to_owned(), &slow)],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("parlor") && svg.contains("postgres") && svg.contains("99.9%"));
        let empty = Latencies::new();
        assert!(write_percentile_plot(&path, "none", &[("x".to_owned(), &empty)]).is_err());
    }
}
