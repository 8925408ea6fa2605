//! H-C1's normalisation under random input: whatever the text (any script, marks, invisible
//! characters, separators, spaced-out characters), the detector does not panic and every match
//! is a range of the original text on char boundaries, in order and disjoint.

use domain::contact::find_all_contact_info;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PARLOR_NORMALISE_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(2_000)
}

#[track_caller]
fn assert_ranges_in(text: &str) {
    let found = find_all_contact_info(text);
    for m in &found {
        assert!(
            m.start <= m.end && m.end <= text.len(),
            "{m:?} out of {text:?}"
        );
        assert!(
            text.is_char_boundary(m.start) && text.is_char_boundary(m.end),
            "{m:?} not on char boundaries of {text:?}"
        );
    }
    assert!(
        found.windows(2).all(|pair| pair[0].end <= pair[1].start),
        "{found:?} overlap in {text:?}"
    );
}

/// Pieces that exercise every step of the normalisation.
const PIECES: &[&str] = &[
    "a",
    "l",
    "i",
    "c",
    "e",
    "@",
    ".",
    "-",
    " ",
    "  ",
    "gmail",
    "com",
    "skype",
    "john",
    "5",
    "55",
    "555",
    "+",
    "\u{200B}",
    "\u{200D}",
    "\u{AD}",
    "\u{FE0F}",
    "\u{202E}",
    "\u{2011}",
    "\u{2014}",
    "\u{3000}",
    "\u{a0}",
    "\u{2028}",
    "\u{301}",
    "\u{308}",
    "\u{430}",
    "\u{435}",
    "\u{3BF}",
    "ｇ",
    "＠",
    "．",
    "𝐚",
    "𝟓",
    "٥",
    "۵",
    "५",
    "๕",
    "①",
    "ﬁ",
    "ǅ",
    "İ",
    "ß",
    "й",
    "\u{1F600}",
    "\u{1F3FD}",
    "\u{E0041}",
    "\u{115F}",
    "\u{10FFFF}",
];

fn salad() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(PIECES), 0..40)
        .prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn h_c1_matches_stay_in_the_original_on_random_unicode(text in "\\PC{0,80}") {
        assert_ranges_in(&text);
    }

    #[test]
    fn h_c1_matches_stay_in_the_original_on_normalisation_salads(text in salad()) {
        assert_ranges_in(&text);
    }
}
