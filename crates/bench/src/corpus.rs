//! The words of the generated messages that B4 and B5 search (and the words B5 searches for):
//! a fixed vocabulary of pronounceable pseudo-words, drawn by a Zipf law like the words of a
//! natural language, so the index holds a few very common words and a long tail of rare ones.
//!
//! The words are consonant–vowel syllables (`baba`, `kotile`): letters only, so nothing in a
//! body looks like a phone number, an e-mail address or a handle to the contact-information
//! detector (R-C1), and no word contains `q`, `x` or `y`, which [`unique_word`] uses to make
//! words that appear in no generated message. Shorter words are the commoner ones, as in real
//! text: the first 8,100 ranks have two syllables, the rest three.

use crate::zipf::{Rng, Zipf};

/// Distinct words.
pub const VOCABULARY_WORDS: usize = 20_000;
/// Words per generated message body (about 150 characters).
pub const WORDS_PER_MESSAGE: usize = 24;
/// The Zipf exponent of word frequencies (Zipf's classic law).
pub const WORD_EXPONENT: f64 = 1.0;

const CONSONANTS: &[u8] = b"bcdfghjklmnprstvwz";
const VOWELS: &[u8] = b"aeiou";

/// The vocabulary and the law its words are drawn by.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    words: Vec<String>,
    zipf: Zipf,
}

impl Default for Vocabulary {
    fn default() -> Self {
        Vocabulary::new()
    }
}

impl Vocabulary {
    /// The fixed vocabulary of [`VOCABULARY_WORDS`] words (the same on every run, so a log
    /// generated earlier and the queries of a later run agree).
    pub fn new() -> Vocabulary {
        let syllables: Vec<[u8; 2]> = CONSONANTS
            .iter()
            .flat_map(|&c| VOWELS.iter().map(move |&v| [c, v]))
            .collect();
        let count = syllables.len();
        let word = |mut n: usize, length: usize| {
            let mut text = String::with_capacity(length * 2);
            for _ in 0..length {
                let [c, v] = syllables[n % count];
                text.push(char::from(c));
                text.push(char::from(v));
                n /= count;
            }
            text
        };
        let two_syllables = count * count;
        let words = (0..VOCABULARY_WORDS)
            .map(|rank| {
                if rank < two_syllables {
                    word(rank, 2)
                } else {
                    word(rank - two_syllables, 3)
                }
            })
            .collect();
        Vocabulary {
            words,
            zipf: Zipf::new(VOCABULARY_WORDS, WORD_EXPONENT),
        }
    }

    /// Draws one word.
    pub fn word(&self, rng: &mut Rng) -> &str {
        self.words
            .get(self.zipf.sample(rng))
            .map_or("", String::as_str)
    }

    /// A message body of [`WORDS_PER_MESSAGE`] drawn words.
    pub fn body(&self, rng: &mut Rng) -> String {
        let mut body = String::with_capacity(WORDS_PER_MESSAGE * 6);
        for i in 0..WORDS_PER_MESSAGE {
            if i > 0 {
                body.push(' ');
            }
            body.push_str(self.word(rng));
        }
        body
    }

    /// A search query as a user would type it: one word (half the time) or two, drawn by the
    /// same law as the bodies' words.
    pub fn query(&self, rng: &mut Rng) -> Vec<String> {
        let words = if rng.next_u64().is_multiple_of(2) {
            1
        } else {
            2
        };
        (0..words).map(|_| self.word(rng).to_owned()).collect()
    }
}

/// A word that no generated body contains and no other `unique_word` is a prefix of: `xq`
/// and ten letters spelling `n` (search matches word prefixes, so equal lengths matter).
pub fn unique_word(n: u64) -> String {
    let mut word = String::from("xq");
    let mut rest = n;
    for _ in 0..10 {
        word.push(char::from(b'a' + (rest % 26) as u8));
        rest /= 26;
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_distinct_letters_without_q_x_y() {
        let vocabulary = Vocabulary::new();
        let mut seen = std::collections::HashSet::new();
        for word in &vocabulary.words {
            assert!(word
                .chars()
                .all(|c| c.is_ascii_lowercase() && !"qxy".contains(c)));
            assert!(seen.insert(word.clone()), "{word} twice");
        }
        assert_eq!(seen.len(), VOCABULARY_WORDS);
        assert_eq!(vocabulary.words[0], "baba");
    }

    #[test]
    fn bodies_pass_the_contact_detector_and_queries_have_one_or_two_words() {
        let vocabulary = Vocabulary::new();
        let mut rng = Rng::new(5);
        for _ in 0..2_000 {
            let body = vocabulary.body(&mut rng);
            assert_eq!(body.split(' ').count(), WORDS_PER_MESSAGE);
            assert!(
                domain::contact::find_contact_info(&body).is_none(),
                "{body}"
            );
            let query = vocabulary.query(&mut rng);
            assert!((1..=2).contains(&query.len()));
        }
    }

    #[test]
    fn unique_words_differ_and_have_one_length() {
        assert_ne!(unique_word(1), unique_word(2));
        assert_eq!(unique_word(0).len(), unique_word(u64::MAX).len());
        assert!(unique_word(7).starts_with("xq"));
    }
}
