//! Runs the contact detector (rule R-C1) over a hand-written corpus of chat sentences and
//! checks its precision and recall.
//!
//! `tests/contact_corpus/positive.txt` holds sentences that share a contact or payment
//! detail, `negative.txt` ordinary ones (one sentence a line, `#` starts a comment). Run with
//! `-- --nocapture` to see the numbers and every misclassified sentence.

use std::path::PathBuf;

use domain::contact::find_contact_info;

/// Lowest acceptable share of flagged sentences that really carry a contact detail.
const MIN_PRECISION: f64 = 0.97;
/// Lowest acceptable share of contact-carrying sentences that get flagged.
const MIN_RECALL: f64 = 0.95;
/// A corpus smaller than this says little about either number.
const MIN_SENTENCES: usize = 150;

fn load(name: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("contact_corpus")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The detected span, for the report.
fn describe(sentence: &str) -> String {
    match find_contact_info(sentence) {
        Some(m) => format!(
            "{:?} {:?}",
            m.kind,
            sentence.get(m.start..m.end).unwrap_or("<bad offsets>")
        ),
        None => "nothing".to_string(),
    }
}

#[test]
fn corpus_precision_and_recall() {
    let positives = load("positive.txt");
    let negatives = load("negative.txt");
    assert!(
        positives.len() >= MIN_SENTENCES && negatives.len() >= MIN_SENTENCES,
        "corpus too small: {} positive, {} negative sentences",
        positives.len(),
        negatives.len()
    );

    let missed: Vec<&String> = positives
        .iter()
        .filter(|s| find_contact_info(s).is_none())
        .collect();
    let false_alarms: Vec<&String> = negatives
        .iter()
        .filter(|s| find_contact_info(s).is_some())
        .collect();

    let true_positives = positives.len() - missed.len();
    let flagged = true_positives + false_alarms.len();
    let precision = if flagged == 0 {
        0.0
    } else {
        true_positives as f64 / flagged as f64
    };
    let recall = true_positives as f64 / positives.len() as f64;

    println!(
        "contact corpus: {} positive, {} negative sentences",
        positives.len(),
        negatives.len()
    );
    println!(
        "precision {precision:.4} ({true_positives}/{flagged}), recall {recall:.4} ({true_positives}/{})",
        positives.len()
    );
    for sentence in &missed {
        println!("MISSED (false negative): {sentence}");
    }
    for sentence in &false_alarms {
        println!(
            "FLAGGED (false positive): {sentence}  ->  {}",
            describe(sentence)
        );
    }

    assert!(
        precision >= MIN_PRECISION,
        "precision {precision:.4} below {MIN_PRECISION}"
    );
    assert!(
        recall >= MIN_RECALL,
        "recall {recall:.4} below {MIN_RECALL}"
    );
}

#[test]
fn corpus_matches_point_into_the_sentence() {
    // Offsets are byte offsets into the original text: they must slice it cleanly.
    for sentence in load("positive.txt") {
        if let Some(m) = find_contact_info(&sentence) {
            assert!(
                m.start < m.end && sentence.get(m.start..m.end).is_some(),
                "bad offsets {m:?} in {sentence:?}"
            );
        }
    }
}
