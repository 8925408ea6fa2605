//! H-C1: the text as a person reads it, for the heuristics, with a map back to the original.
//!
//! Hiding a contact detail from a program while a person still reads it takes a character that
//! renders as nothing (a zero-width space inside `alice@gmail.com`), one that renders like
//! another (a non-breaking hyphen, full-width digits, a Cyrillic `а` in `gmаil`), digits of
//! another script (`٥٥٥`), or letters spaced out (`a l i c e @ g m a i l . c o m`). The
//! heuristics are written for the plain form, so before they run the text is read the way a
//! person reads it:
//!
//! 1. Unicode NFKC, one base character and its combining marks at a time (so each output
//!    character knows where it came from): full-width and mathematical letters and digits,
//!    ligatures and circled digits become their plain forms.
//! 2. Format characters (general category Cf: zero-width spaces and joiners, bidi controls, the
//!    soft hyphen) and default-ignorable code points (variation selectors, fillers) are removed.
//! 3. Every dash (category Pd) becomes `-`, every space (White_Space) becomes a space (a line
//!    or paragraph separator a line break), every decimal digit of any script (category Nd)
//!    its ASCII digit, every dot-like character (the middle dot and what UTS #39 confuses with
//!    it, bullets included, and the ideographic full stop) a `.`, and any other punctuation or
//!    symbol whose UTS #39 prototype is one ASCII punctuation character (fraction slash,
//!    ratio) that character.
//! 4. Runs of at least [`JOINED_CHARS_MIN`] single characters separated by spaces, or by one
//!    dot or dash, with at least [`JOINED_LETTERS_MIN`] letters among them, are joined:
//!    `a l i c e` reads `alice`, `s-k-y-p-e` reads `skype`.
//! 5. In every word that has a non-ASCII letter, when each such letter's UTS #39 skeleton
//!    (its diacritics dropped) is ASCII, the word is spelled with those Latin letters: `gmаil`
//!    (Cyrillic `а`) reads `gmail`, the wholly Cyrillic `раураӏ` reads `paypal`. A word with
//!    any letter that has no Latin look-alike (`Привет`, `скайп`) stays as written, so the
//!    heuristics' own Cyrillic and CJK service names still match. ASCII letters are never mapped: UTS #39 maps
//!    `m` to `rn` and `1` to `l`, which is right for comparing names and wrong for reading.
//!
//! The joining of step 4 can also hide a detail that the unjoined text shows (`call 5 5 5 1 2
//! 3 4 5 6 7 a b` joins into one token glued to letters), so when anything was joined the
//! heuristics read both forms ([`views`]) and their findings are merged.
//!
//! Plain ASCII text without a run to join (most messages) is read as it is, without a copy
//! ([`is_plain`]): its cost is one `is_ascii` and one scan for runs.

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// Single characters a run needs before it is joined: two (`a b`) are too common in prose
/// ("plan B", "a 2") and carry too little to hide a detail in.
const JOINED_CHARS_MIN: usize = 3;
/// Letters a run needs before it is joined: runs of single digits are the digit-run
/// heuristic's (`0 7 7 0 0 9 …` is a phone number as written, `1 2 3 4 5` a list).
const JOINED_LETTERS_MIN: usize = 2;
/// Spaces (or tabs) that may separate two single characters of a run.
const JOINED_SPACES_MAX: usize = 3;
/// How far back the digit value search walks: the longest run of consecutive decimal digits in
/// Unicode is the 50 mathematical digits, which NFKC has already made ASCII.
const DIGIT_BLOCK_CHARS_MAX: u32 = 64;

/// Whether `text` is read as it is: plain ASCII without a run of single characters to join.
/// The heuristics then read the original, with no copy made.
pub(super) fn is_plain(text: &str) -> bool {
    text.is_ascii() && !has_joinable_run(text)
}

/// One way of reading a text that is not [`is_plain`]: the string the heuristics see and where
/// each of its bytes came from.
pub(super) struct View {
    /// The text the heuristics read.
    pub(super) text: String,
    /// For each byte of `text`, the byte range of the original it was read from.
    origin: Vec<(usize, usize)>,
}

impl View {
    /// The byte range of the original text that `start..end` of [`View::text`] was read from.
    /// Both ends are char boundaries of the original, and `start <= end`.
    pub(super) fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        let from = self.origin.get(start).map(|&(from, _)| from);
        let to = end
            .checked_sub(1)
            .and_then(|last| self.origin.get(last))
            .map(|&(_, to)| to);
        match (from, to) {
            (Some(from), Some(to)) if from <= to => (from, to),
            (Some(at), _) | (None, Some(at)) => (at, at),
            (None, None) => (0, 0),
        }
    }
}

/// The ways the heuristics read a text that is not [`is_plain`] (module docs): its normalised
/// form and, when that has runs of single characters, the same joined.
pub(super) fn views(text: &str) -> Vec<View> {
    let pieces = read_characters(text);
    let joined = join_single_characters(&pieces);
    let mut views = Vec::with_capacity(2);
    if let Some(joined) = joined {
        views.push(build(spell_look_alikes(joined)));
    }
    views.push(build(spell_look_alikes(pieces)));
    views
}

/// One character of the normalised text and the byte range of the original it came from.
#[derive(Clone, Copy)]
struct Piece {
    character: char,
    from: usize,
    to: usize,
}

/// Steps 1–3: NFKC per base character and its marks, ignorables removed, separators and
/// digits made ASCII.
fn read_characters(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::with_capacity(text.len());
    let mut cluster = String::new();
    let mut cluster_from = 0;
    let flush = |cluster: &mut String, from: usize, to: usize, pieces: &mut Vec<Piece>| {
        // A lone ASCII character is its own NFKC and reads as itself: most of any text.
        let mut characters = cluster.chars();
        if let (Some(only), None) = (characters.next(), characters.next()) {
            if only.is_ascii() {
                pieces.push(Piece {
                    character: only,
                    from,
                    to,
                });
                cluster.clear();
                return;
            }
        }
        for character in cluster.chars().nfkc() {
            if let Some(read) = read_character(character) {
                pieces.push(Piece {
                    character: read,
                    from,
                    to,
                });
            }
        }
        cluster.clear();
    };
    for (offset, character) in text.char_indices() {
        // A combining mark belongs to the base before it: NFKC composes them (`e` + U+0301 is
        // `é`), so they are normalised together.
        if canonical_combining_class(character) == 0 {
            flush(&mut cluster, cluster_from, offset, &mut pieces);
            cluster_from = offset;
        }
        cluster.push(character);
    }
    flush(&mut cluster, cluster_from, text.len(), &mut pieces);
    pieces
}

/// Step 2 and 3 for one character of NFKC output: what it reads as, or nothing.
fn read_character(character: char) -> Option<char> {
    if character.is_ascii() {
        return Some(character);
    }
    match character.general_category() {
        GeneralCategory::Format => return None,
        GeneralCategory::DashPunctuation => return Some('-'),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => return Some('\n'),
        GeneralCategory::DecimalNumber => return Some(ascii_digit(character).unwrap_or(character)),
        _ => {}
    }
    if character.is_whitespace() {
        return Some(' ');
    }
    if is_default_ignorable(character) {
        return None;
    }
    if !character.is_alphanumeric() {
        if let Some(ascii) = ascii_punctuation_prototype(character) {
            return Some(ascii);
        }
    }
    Some(character)
}

/// What a character's UTS #39 skeleton is, as far as normalising needs to know.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Skeleton {
    /// Nothing: a default-ignorable code point, which skeletons drop.
    Empty,
    /// One character.
    One(char),
    /// More than one.
    Longer,
}

/// The skeleton of one character (its prototype in the crate's confusables table, NFD),
/// without its combining marks when `drop_marks`.
fn skeleton(character: char, drop_marks: bool) -> Skeleton {
    let mut buffer = [0u8; 4];
    let mut shape = Skeleton::Empty;
    for prototype in unicode_security::skeleton(character.encode_utf8(&mut buffer)) {
        if drop_marks && prototype.general_category_group() == GeneralCategoryGroup::Mark {
            continue;
        }
        shape = match shape {
            Skeleton::Empty => Skeleton::One(prototype),
            Skeleton::One(_) | Skeleton::Longer => return Skeleton::Longer,
        };
    }
    shape
}

/// A default-ignorable code point (UTS #39 skeletons drop them).
fn is_default_ignorable(character: char) -> bool {
    skeleton(character, false) == Skeleton::Empty
}

/// The ASCII punctuation a punctuation character or symbol reads as: a dot-like one (its
/// UTS #39 prototype is the middle dot, as for `•`, `∙` and `･`, or it is the middle dot or the
/// ideographic full stop `。`, whose prototype is a ring) is `.`; otherwise the one ASCII
/// punctuation character that is its prototype, if any (`⁄` is `/`, `∶` is `:`).
fn ascii_punctuation_prototype(character: char) -> Option<char> {
    if matches!(character, MIDDLE_DOT | IDEOGRAPHIC_FULL_STOP) {
        return Some('.');
    }
    match skeleton(character, false) {
        Skeleton::One(MIDDLE_DOT) => Some('.'),
        Skeleton::One(prototype) if prototype.is_ascii_punctuation() => Some(prototype),
        _ => None,
    }
}

/// The prototype UTS #39 gives the dot-like characters.
const MIDDLE_DOT: char = '\u{B7}';
/// The CJK full stop: a dot between the labels of an address to a reader.
const IDEOGRAPHIC_FULL_STOP: char = '\u{3002}';

/// The ASCII digit of a decimal digit of any script. Unicode encodes every script's decimal
/// digits as consecutive runs of ten, zero first (a stability guarantee), so a digit's value
/// is its distance from the start of its run of digits, modulo ten.
fn ascii_digit(character: char) -> Option<char> {
    let code = u32::from(character);
    let mut start = code;
    for _ in 0..DIGIT_BLOCK_CHARS_MAX {
        let Some(previous) = start.checked_sub(1).and_then(char::from_u32) else {
            break;
        };
        if previous.general_category() != GeneralCategory::DecimalNumber {
            let value = (code - start) % 10;
            return char::from_digit(value, 10);
        }
        start -= 1;
    }
    None
}

/// Whether a character may stand in a run of single characters (step 4).
fn joinable(character: char) -> bool {
    character.is_alphanumeric() || matches!(character, '@' | '.' | '_' | '-' | '+')
}

/// Step 4's reading of a text, generic over how a character is looked up, so that plain ASCII
/// text is checked without a copy and without allocating.
///
/// A single character is a joinable one with no letter or digit on either side; two singles of
/// a run are separated by 1–[`JOINED_SPACES_MAX`] spaces or tabs, or by exactly one `.` or `-`
/// when both are letters or digits (`j.o.h.n`). A run starts and ends with a letter or digit.
struct Singles<F: Fn(usize) -> Option<char>> {
    at: F,
}

impl<F: Fn(usize) -> Option<char>> Singles<F> {
    fn alphanumeric(&self, i: Option<usize>) -> bool {
        i.and_then(&self.at)
            .is_some_and(|character| character.is_alphanumeric())
    }

    fn single(&self, i: usize) -> bool {
        (self.at)(i).is_some_and(joinable)
            && !self.alphanumeric(i.checked_sub(1))
            && !self.alphanumeric(i.checked_add(1))
    }

    /// The next single of the run after the single at `i`, if a separator leads to one.
    fn next_single(&self, i: usize) -> Option<usize> {
        let first = (self.at)(i.checked_add(1)?)?;
        if matches!(first, '.' | '-') {
            let next = i + 2;
            let both_alphanumeric = self.alphanumeric(Some(i)) && self.alphanumeric(Some(next));
            return (both_alphanumeric && !self.alphanumeric(next.checked_add(1))).then_some(next);
        }
        let mut next = i + 1;
        while matches!((self.at)(next), Some(' ' | '\t')) {
            next += 1;
        }
        let spaces = next - (i + 1);
        ((1..=JOINED_SPACES_MAX).contains(&spaces) && self.single(next)).then_some(next)
    }

    /// Calls `on_run(first, last)` for each run to join, with the positions of its first and
    /// last character.
    fn runs(&self, mut on_run: impl FnMut(usize, usize)) {
        let mut i = 0;
        while (self.at)(i).is_some() {
            // A run starts with a letter or digit (a leading `@` or `.` is left out).
            if !(self.single(i) && self.alphanumeric(Some(i))) {
                i += 1;
                continue;
            }
            let (mut current, mut last, mut count, mut letters) = (i, i, 1, 0);
            let mut counted = (1, 0);
            loop {
                if (self.at)(current).is_some_and(char::is_alphabetic) {
                    letters += 1;
                }
                if self.alphanumeric(Some(current)) {
                    last = current;
                    counted = (count, letters);
                }
                match self.next_single(current) {
                    Some(next) => {
                        current = next;
                        count += 1;
                    }
                    None => break,
                }
            }
            // A run ends with a letter or digit too: count up to the last one.
            let (kept, kept_letters) = counted;
            if kept >= JOINED_CHARS_MIN && kept_letters >= JOINED_LETTERS_MIN {
                on_run(i, last);
            }
            i = current + 1;
        }
    }
}

/// Whether step 4 would join anything in plain ASCII `text`.
fn has_joinable_run(text: &str) -> bool {
    // A run starts with a lone letter or digit; most messages have none, and finding that out
    // takes one tight pass over the bytes (the writer's hot path, B1).
    let bytes = text.as_bytes();
    let alphanumeric = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphanumeric);
    let mut previous = false;
    let lone = (0..bytes.len()).any(|i| {
        let current = alphanumeric(i);
        let lone = current && !previous && !alphanumeric(i + 1);
        previous = current;
        lone
    });
    if !lone {
        return false;
    }
    let singles = Singles {
        at: |i: usize| text.as_bytes().get(i).map(|&byte| char::from(byte)),
    };
    let mut found = false;
    singles.runs(|_, _| found = true);
    found
}

/// Step 4 on the pieces: the joined pieces, or none when there is no run. The separators
/// dropped from a run are read as part of the character before them, so that a match's range
/// in the original covers them.
fn join_single_characters(pieces: &[Piece]) -> Option<Vec<Piece>> {
    let singles = Singles {
        at: |i: usize| pieces.get(i).map(|piece| piece.character),
    };
    let mut runs: Vec<(usize, usize)> = Vec::new();
    singles.runs(|first, last| runs.push((first, last)));
    if runs.is_empty() {
        return None;
    }
    let mut joined = Vec::with_capacity(pieces.len());
    let mut next = 0;
    for (first, last) in runs {
        joined.extend_from_slice(pieces.get(next..first).unwrap_or(&[]));
        let mut position = first;
        while let Some(&piece) = pieces.get(position) {
            let following = (position < last)
                .then(|| singles.next_single(position))
                .flatten();
            // The kept character stands for itself and the separator after it.
            let to = following
                .and_then(|following| pieces.get(following - 1))
                .map_or(piece.to, |separator| separator.to.max(piece.to));
            joined.push(Piece { to, ..piece });
            match following {
                Some(following) => position = following,
                None => break,
            }
        }
        next = last + 1;
    }
    joined.extend_from_slice(pieces.get(next..).unwrap_or(&[]));
    Some(joined)
}

/// Step 5: words whose non-ASCII letters all have a Latin look-alike are spelled with it.
fn spell_look_alikes(mut pieces: Vec<Piece>) -> Vec<Piece> {
    let mut start = 0;
    while start < pieces.len() {
        if !pieces[start].character.is_alphanumeric() {
            start += 1;
            continue;
        }
        let end = pieces[start..]
            .iter()
            .position(|piece| !piece.character.is_alphanumeric())
            .map_or(pieces.len(), |length| start + length);
        let word = &pieces[start..end];
        if word.iter().any(|piece| !piece.character.is_ascii()) {
            let latin: Option<Vec<char>> = word
                .iter()
                .map(|piece| latin_look_alike(piece.character))
                .collect();
            if let Some(latin) = latin {
                for (piece, letter) in pieces[start..end].iter_mut().zip(latin) {
                    piece.character = letter;
                }
            }
        }
        start = end;
    }
    pieces
}

/// The ASCII letter or digit `character` looks like (UTS #39 prototype, diacritics dropped:
/// `ä` reads as `a`), or itself when it is ASCII already; none when it looks like no single
/// ASCII character. A letter becomes a letter: the Cyrillic `б` looks like `6`, but a word is
/// not a number.
fn latin_look_alike(character: char) -> Option<char> {
    if character.is_ascii() {
        return Some(character);
    }
    match skeleton(character, true) {
        Skeleton::One(latin) if character.is_alphabetic() && latin.is_ascii_alphabetic() => {
            Some(latin)
        }
        Skeleton::One(latin) if !character.is_alphabetic() && latin.is_ascii_alphanumeric() => {
            Some(latin)
        }
        _ => None,
    }
}

/// The string of `pieces` and where each of its bytes came from.
fn build(pieces: Vec<Piece>) -> View {
    let mut text = String::with_capacity(pieces.len());
    let mut origin = Vec::with_capacity(pieces.len());
    for piece in pieces {
        text.push(piece.character);
        for _ in 0..piece.character.len_utf8() {
            origin.push((piece.from, piece.to));
        }
    }
    View { text, origin }
}
