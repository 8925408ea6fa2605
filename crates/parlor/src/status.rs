//! `parlor status --nats-url …`: each part of a running system with its health, position and
//! lag, as a table. It asks over NATS what the operator `/healthz` asks (the writer's
//! `<prefix>.writer.ping` and every read model's `{"op": "status"}`), so it works for parts
//! spread over machines, where no single `/healthz` sees them all.

use std::fmt::Write as _;

use anyhow::Context;
use bus::Bus;
use gateway::health::PartsReport;
use protocol::ReadModel;

/// Asks every part over the NATS server at `nats_url`, prints the table, and fails (non-zero
/// exit) naming the parts that did not answer.
pub async fn run(nats_url: &str, prefix: &str) -> anyhow::Result<()> {
    let bus = Bus::connect(nats_url, "parlor-status")
        .await
        .with_context(|| {
            format!("--nats-url {nats_url}: cannot reach NATS there (is nats-server running?)")
        })?;
    let report = gateway::health::ask_parts(&bus, prefix, &ReadModel::ALL).await;
    print!("{}", render(&report));
    let down = down_parts(&report);
    if down.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} did not answer on {nats_url} under the prefix {prefix:?} (is it running, with \
             the same --subject-prefix?)",
            down.join(", ")
        )
    }
}

/// The names of the parts that did not answer.
fn down_parts(report: &PartsReport) -> Vec<&'static str> {
    let writer = report.writer.is_err().then_some("writer");
    let models = report
        .models
        .iter()
        .filter(|(_, answer)| answer.is_err())
        .map(|(model, _)| model.name());
    writer.into_iter().chain(models).collect()
}

/// The table: one row per part, `LAG` being how many positions a read model is behind the
/// writer's head (unknown while the writer is down).
fn render(report: &PartsReport) -> String {
    let head = report.writer.as_ref().ok().copied();
    let mut rows = vec![row("writer", &report.writer, None)];
    for (model, answer) in &report.models {
        rows.push(row(model.name(), answer, head));
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<14} {:<6} {:>10} {:>8}  NOTE",
        "PART", "STATUS", "POSITION", "LAG"
    );
    for [part, status, position, lag, note] in rows {
        let line = format!("{part:<14} {status:<6} {position:>10} {lag:>8}  {note}");
        let _ = writeln!(table, "{}", line.trim_end());
    }
    table
}

/// One row's cells: part, status, position, lag, note.
fn row(part: &str, answer: &Result<u64, String>, head: Option<u64>) -> [String; 5] {
    match answer {
        Ok(position) => {
            let lag = match head {
                // Asked at once, a model may have applied a position the head reported just
                // before: that is no lag.
                Some(head) => head.saturating_sub(*position).to_string(),
                None => "-".to_owned(),
            };
            [
                part.to_owned(),
                "up".to_owned(),
                position.to_string(),
                lag,
                String::new(),
            ]
        }
        Err(error) => [
            part.to_owned(),
            "down".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            error.clone(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_part_with_its_lag_behind_the_head() {
        let report = PartsReport {
            writer: Ok(42),
            models: vec![
                (ReadModel::Rooms, Ok(42)),
                (ReadModel::Timeline, Ok(40)),
                (ReadModel::Search, Err("no responders".to_owned())),
            ],
        };
        let table = render(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        let cells = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cells(lines[0]),
            ["PART", "STATUS", "POSITION", "LAG", "NOTE"]
        );
        assert_eq!(cells(lines[1]), ["writer", "up", "42", "-"]);
        assert_eq!(cells(lines[2]), ["rooms", "up", "42", "0"]);
        assert_eq!(cells(lines[3]), ["timeline", "up", "40", "2"]);
        assert_eq!(
            cells(lines[4]),
            ["search", "down", "-", "-", "no", "responders"]
        );
        assert_eq!(down_parts(&report), ["search"]);
    }

    #[test]
    fn without_the_writer_no_lag_is_known() {
        let report = PartsReport {
            writer: Err("timed out".to_owned()),
            models: vec![(ReadModel::Rooms, Ok(7))],
        };
        let table = render(&report);
        assert!(
            table.lines().nth(1).unwrap_or("").contains("timed out"),
            "{table}"
        );
        let rooms: Vec<&str> = table
            .lines()
            .nth(2)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(rooms, ["rooms", "up", "7", "-"]);
        assert_eq!(down_parts(&report), ["writer"]);
    }
}
