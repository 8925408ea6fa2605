//! Plain-text tables for the terminal and for pasting into docs/benchmarks.md.

use std::fmt::Write as _;

use crate::stats::Spread;

/// A table: a header row and data rows of already formatted cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra cells are dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table as Markdown with aligned columns.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut out = String::from("|");
            for (column, width) in widths.iter().enumerate().take(columns) {
                let cell = cells.get(column).map(String::as_str).unwrap_or("");
                let pad = width.saturating_sub(cell.chars().count());
                let _ = write!(out, " {cell}{} |", " ".repeat(pad));
            }
            out
        };
        let mut out = line(&self.header);
        out.push('\n');
        out.push('|');
        for width in &widths {
            let _ = write!(out, "{}|", "-".repeat(width + 2));
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

/// A number with thousands separators and no decimals (`41,250`).
pub fn thousands(value: f64) -> String {
    let rounded = value.round();
    let negative = rounded < 0.0;
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if negative {
        format!("-{out}")
    } else {
        out
    }
}

/// A value in its unit's usual precision.
pub fn value(value: f64, unit: &str) -> String {
    match unit {
        "cmd/s" | "op/s" | "events/s" | "/s" | "B" => thousands(value),
        "ms" if value < 1.0 => format!("{value:.3}"),
        "ms" => format!("{value:.2}"),
        "×" => format!("{value:.2}"),
        _ => format!("{value:.2}"),
    }
}

/// The summary table of repeated runs: median and spread of every figure.
pub fn spread_table(spreads: &[Spread]) -> String {
    let mut table = Table::new(&["figure", "median", "min – max", "unit", "runs"]);
    for spread in spreads {
        table.row(vec![
            spread.name.clone(),
            value(spread.median, spread.unit),
            format!(
                "{} – {}",
                value(spread.min, spread.unit),
                value(spread.max, spread.unit)
            ),
            spread.unit.to_owned(),
            spread.runs.to_string(),
        ]);
    }
    table.render()
}

/// "met" or "NOT met".
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(41_250.6), "41,251");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn tables_align() {
        let mut table = Table::new(&["a", "bb"]);
        table.row(vec!["long cell".into(), "x".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), lines[2].len());
    }
}
