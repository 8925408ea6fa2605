//! Runs the contact detector (rule R-C1) over a hand-written corpus of chat sentences and
//! checks its precision and recall.
//!
//! `tests/contact_corpus/positive.txt` holds sentences that share a contact or payment
//! detail, `negative.txt` ordinary ones (one sentence a line, `#` starts a comment); the
//! `adversarial_*.txt` pair is H-C3's (docs/contact-corpus.md). Run with `-- --nocapture` to
//! see the numbers and every misclassified sentence.

use std::path::PathBuf;

use domain::contact::find_contact_info;

/// Lowest acceptable share of flagged sentences that really carry a contact detail.
const MIN_PRECISION: f64 = 0.97;
/// Lowest acceptable share of contact-carrying sentences that get flagged.
const MIN_RECALL: f64 = 0.95;
/// A corpus smaller than this says little about either number.
const MIN_SENTENCES: usize = 150;
/// H-C3's floors on the adversarial part of the corpus.
const ADVERSARIAL_MIN_PRECISION: f64 = 0.98;
/// H-C3: lowest acceptable recall on the adversarial positives.
const ADVERSARIAL_MIN_RECALL: f64 = 0.95;
/// The adversarial part's smallest acceptable size, each side.
const ADVERSARIAL_MIN_SENTENCES: usize = 60;

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

/// Precision and recall of the detector on a corpus: prints them with every misclassified
/// sentence, and returns them.
fn precision_and_recall(name: &str, positives: &[String], negatives: &[String]) -> (f64, f64) {
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
    let recall = true_positives as f64 / positives.len().max(1) as f64;

    println!(
        "{name}: {} positive, {} negative sentences",
        positives.len(),
        negatives.len()
    );
    println!(
        "{name}: precision {precision:.4} ({true_positives}/{flagged}), recall {recall:.4} ({true_positives}/{})",
        positives.len()
    );
    for sentence in &missed {
        println!("MISSED (false negative): {sentence:?}");
    }
    for sentence in &false_alarms {
        println!(
            "FLAGGED (false positive): {sentence:?}  ->  {}",
            describe(sentence)
        );
    }
    (precision, recall)
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
    let (precision, recall) = precision_and_recall("contact corpus", &positives, &negatives);
    assert!(
        precision >= MIN_PRECISION,
        "precision {precision:.4} below {MIN_PRECISION}"
    );
    assert!(
        recall >= MIN_RECALL,
        "recall {recall:.4} below {MIN_RECALL}"
    );
}

/// H-C3: the adversarial part of the corpus. `adversarial_positive.txt` holds every trick of
/// H-C1 (format and zero-width characters, Unicode dashes and spaces, full-width and
/// mathematical forms, Cyrillic and Greek look-alikes, spaced-out letters, digits of other
/// scripts, and combinations); `adversarial_negative.txt` ordinary multilingual chat with
/// numbers, prices, dates, times, versions, code, ordinary URLs, non-ASCII digits and single
/// letters. The figures are written in docs/contact-corpus.md.
#[test]
fn h_c3_adversarial_corpus_precision_and_recall() {
    let positives = load("adversarial_positive.txt");
    let negatives = load("adversarial_negative.txt");
    assert!(
        positives.len() >= ADVERSARIAL_MIN_SENTENCES
            && negatives.len() >= ADVERSARIAL_MIN_SENTENCES,
        "adversarial corpus too small: {} positive, {} negative sentences",
        positives.len(),
        negatives.len()
    );
    let (precision, recall) = precision_and_recall("adversarial corpus", &positives, &negatives);
    assert!(
        precision >= ADVERSARIAL_MIN_PRECISION,
        "precision {precision:.4} below {ADVERSARIAL_MIN_PRECISION}"
    );
    assert!(
        recall >= ADVERSARIAL_MIN_RECALL,
        "recall {recall:.4} below {ADVERSARIAL_MIN_RECALL}"
    );
}

#[test]
fn corpus_matches_point_into_the_sentence() {
    // Offsets are byte offsets into the original text: they must slice it cleanly.
    for sentence in load("positive.txt")
        .into_iter()
        .chain(load("adversarial_positive.txt"))
    {
        if let Some(m) = find_contact_info(&sentence) {
            assert!(
                m.start < m.end && sentence.get(m.start..m.end).is_some(),
                "bad offsets {m:?} in {sentence:?}"
            );
        }
    }
}
