//! Per-message cost of the contact detector (R-C1, H-C1) on a few kinds of body, in one process:
//! the benchmark harness's plain ASCII body (B1's, the writer's hot path), ordinary non-ASCII
//! prose, and a body with spaced-out letters, each through `find_all_contact_info` (prefilter
//! first) and `find_all_contact_info_without_prefilter` (every heuristic).
//!
//! `cargo run --release -p domain --example contact_costs -- 200000`

use std::hint::black_box;
use std::time::Instant;

use domain::contact::{find_all_contact_info, find_all_contact_info_without_prefilter};

/// The benchmark harness's message body (crates/bench/src/workload.rs).
const ASCII_BODY: &str =
    "The quick brown fox jumps over the lazy dog while the whole team reviews \
the project plan together, and everyone agrees that the next milestone looks realistic for the \
work still ahead of us all";

/// Ordinary prose with non-ASCII letters, a dash and curly quotes.
const NON_ASCII_BODY: &str = "Привет! Das Angebot für die Landingpage — 1 500 € inkl. \
zwei Korrekturrunden — gilt bis Freitag. C’est parfait, merci beaucoup pour le brief";

/// Prose with a run of single letters to join.
const SPACED_BODY: &str = "I am a b c and the plan is fine, let us talk about the next step \
tomorrow after the standup with the whole team";

/// Repetitions when none is given.
const ROUNDS_DEFAULT: u32 = 200_000;

fn per_call_ns(rounds: u32, started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e9 / f64::from(rounds.max(1))
}

fn measure(name: &str, body: &str, rounds: u32) {
    // Warm the detector's regexes and tables first.
    black_box(find_all_contact_info_without_prefilter(body));
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(find_all_contact_info(black_box(body)));
    }
    let prefiltered = per_call_ns(rounds, started);
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(find_all_contact_info_without_prefilter(black_box(body)));
    }
    let heuristics = per_call_ns(rounds, started);
    println!(
        "{name} ({} chars): find_all_contact_info {prefiltered:.0} ns, every heuristic \
         {heuristics:.0} ns",
        body.chars().count()
    );
}

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(ROUNDS_DEFAULT);
    measure("B1 ASCII body", ASCII_BODY, rounds);
    measure("non-ASCII prose", NON_ASCII_BODY, rounds / 10);
    measure("spaced letters", SPACED_BODY, rounds / 10);
}
