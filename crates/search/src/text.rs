//! Words, prefixes and snippets: the one definition of a "word" that the index, the query and the
//! highlighter share, so that what matches is exactly what is marked.
//!
//! A word is a run of alphanumeric characters (Unicode's `char::is_alphanumeric`), compared in
//! lower case; everything else separates words, so `foo.png` is the two words `foo` and `png`.
//! A query word matches a text word that starts with it (word-prefix matching: `roadm` finds
//! `roadmap`).
//!
//! How the index answers a prefix ([`PrefixTokenizer`]): it holds every word whole, and also
//! its prefixes of 1 to [`SHORT_PREFIX_CHARS`] characters (`r`, `ro`, `roa` for `roadmap`). A
//! query word of at most [`SHORT_PREFIX_CHARS`] characters is then one exact term, whose
//! documents would otherwise be the union of thousands of words; a longer one is a range of
//! whole words in the term dictionary (`roadm` ≤ term < `roadn`), which only whole words can
//! fall in, since every short prefix is shorter than the query word. That is at most four terms
//! per indexed word (a full edge n-gram is one per character: it indexed half as fast for a
//! quarter off the query time), while the costliest prefix queries, the short ones, whose range
//! would span most of the index, stay single lookups intersected with the caller's rooms.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The prefixes indexed besides the whole word, in characters: 1 up to this. A query word this
/// short is an exact term; a longer one a range of whole words.
pub const SHORT_PREFIX_CHARS: usize = 3;

/// The longest snippet, in characters of the message body (marks, escapes and ellipses aside).
pub const SNIPPET_CHARS_MAX: usize = 200;

/// Characters of context a snippet shows before the first matched word, when the body is long.
pub const SNIPPET_CONTEXT_CHARS: usize = 40;

/// The byte ranges of the words of `text`, in order.
pub fn word_spans(text: &str) -> WordSpans<'_> {
    WordSpans { text, cursor: 0 }
}

/// The iterator of [`word_spans`].
#[derive(Debug, Clone)]
pub struct WordSpans<'a> {
    text: &'a str,
    cursor: usize,
}

impl Iterator for WordSpans<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let rest = self.text.get(self.cursor..)?;
        let (offset, _) = rest.char_indices().find(|(_, c)| c.is_alphanumeric())?;
        let start = self.cursor + offset;
        let tail = self.text.get(start..)?;
        let length = tail
            .char_indices()
            .find(|(_, c)| !c.is_alphanumeric())
            .map_or(tail.len(), |(index, _)| index);
        let end = start + length;
        self.cursor = end;
        Some((start, end))
    }
}

/// `word` in lower case.
pub fn lower(word: &str) -> String {
    let mut lowered = String::with_capacity(word.len());
    for c in word.chars() {
        lowered.extend(c.to_lowercase());
    }
    lowered
}

/// Whether a query word (lowered) is short enough to be an exact indexed prefix.
pub fn is_short(word: &str) -> bool {
    word.chars().nth(SHORT_PREFIX_CHARS).is_none()
}

/// The lowered words of `text` (a lowered word can hold a non-alphanumeric character, such as
/// the combining dot of a lowered `İ`; it stays in the term, as it does in the index).
fn terms_of(text: &str) -> impl Iterator<Item = String> + '_ {
    word_spans(text).map(|(start, end)| lower(&text[start..end]))
}

/// The query's words: lowered, without duplicates, in order.
pub fn query_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in terms_of(query) {
        if !words.contains(&word) {
            words.push(word);
        }
    }
    words
}

/// The lowered words of a name, for matching rooms in memory.
pub fn name_words(name: &str) -> Vec<String> {
    terms_of(name).collect()
}

/// Whether every query word is a prefix of one of `words` (lowered).
pub fn all_match<'a>(query: &[String], words: impl Iterator<Item = &'a str> + Clone) -> bool {
    query
        .iter()
        .all(|wanted| words.clone().any(|word| word.starts_with(wanted.as_str())))
}

/// What separates the words [`body_words`] returns: no lowered word holds a space (a space is
/// not alphanumeric, and no letter or digit lowers to one).
pub const BODY_WORDS_SEPARATOR: char = ' ';

/// The lowered words of a message body, each once, separated by [`BODY_WORDS_SEPARATOR`]: what
/// the index holds of it ([`PrefixTokenizer`]), for matching messages not committed yet with
/// [`all_match`] exactly as the index would.
pub fn body_words(body: &str) -> String {
    let mut words: Vec<String> = terms_of(body).collect();
    words.sort_unstable();
    words.dedup();
    words.join(&BODY_WORDS_SEPARATOR.to_string())
}

/// A snippet of `body` around its first matched word: at most [`SNIPPET_CHARS_MAX`] characters,
/// every word that starts with a query word inside `<mark>…</mark>`, the rest HTML-escaped,
/// `…` where the body was cut. A body without a match shows its beginning.
pub fn snippet(body: &str, query: &[String]) -> String {
    let matched: Vec<(usize, usize)> = word_spans(body)
        .filter(|&(start, end)| {
            let word = lower(&body[start..end]);
            query.iter().any(|wanted| word.starts_with(wanted.as_str()))
        })
        .collect();
    let mut start = 0;
    if let Some(&(first, _)) = matched.first() {
        // Some context before the first hit, without starting inside a word.
        start = body[..first]
            .char_indices()
            .rev()
            .take(SNIPPET_CONTEXT_CHARS)
            .last()
            .map_or(first, |(index, _)| index);
        if let Some((_, end)) = word_spans(body)
            .take_while(|&(word_start, _)| word_start < start)
            .find(|&(word_start, word_end)| word_start < start && start < word_end)
        {
            start = end;
        }
    }
    let end = body[start..]
        .char_indices()
        .nth(SNIPPET_CHARS_MAX)
        .map_or(body.len(), |(index, _)| start + index);
    let mut out = String::with_capacity(end - start + 32);
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(word_start, word_end) in &matched {
        if word_end <= start || word_start >= end {
            continue;
        }
        let (from, to) = (word_start.max(start), word_end.min(end));
        escape_into(&mut out, &body[at..from]);
        out.push_str("<mark>");
        escape_into(&mut out, &body[from..to]);
        out.push_str("</mark>");
        at = to;
    }
    escape_into(&mut out, &body[at..end]);
    if end < body.len() {
        out.push('…');
    }
    out
}

/// Appends `text` HTML-escaped (`&`, `<`, `>`, `"`, `'`).
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// The tantivy tokenizer of message bodies: every word lowered, whole, and its prefixes of 1 to
/// [`SHORT_PREFIX_CHARS`] characters (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct PrefixTokenizer {
    token: Token,
}

/// The token stream of [`PrefixTokenizer`].
#[derive(Debug)]
pub struct PrefixTokenStream<'a> {
    words: WordSpans<'a>,
    text: &'a str,
    /// The current word, lowered.
    word: String,
    /// Byte ends of the current word's terms (short prefixes, then the whole word).
    ends: Vec<usize>,
    /// The next prefix of `ends` to emit.
    next: usize,
    /// The current word's place in the text.
    span: (usize, usize),
    position: usize,
    token: &'a mut Token,
}

impl Tokenizer for PrefixTokenizer {
    type TokenStream<'a> = PrefixTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> PrefixTokenStream<'a> {
        self.token.reset();
        PrefixTokenStream {
            words: word_spans(text),
            text,
            word: String::new(),
            ends: Vec::with_capacity(SHORT_PREFIX_CHARS + 1),
            next: 0,
            span: (0, 0),
            position: 0,
            token: &mut self.token,
        }
    }
}

impl PrefixTokenStream<'_> {
    /// Moves to the next word; false at the end of the text.
    fn next_word(&mut self) -> bool {
        let Some((start, end)) = self.words.next() else {
            return false;
        };
        self.word.clear();
        for c in self.text[start..end].chars() {
            self.word.extend(c.to_lowercase());
        }
        // The short prefixes, then the whole word (once, if it is not one of them).
        self.ends.clear();
        self.ends.extend(
            self.word
                .char_indices()
                .skip(1)
                .map(|(index, _)| index)
                .take(SHORT_PREFIX_CHARS),
        );
        if self.ends.last() != Some(&self.word.len()) {
            self.ends.push(self.word.len());
        }
        self.next = 0;
        self.span = (start, end);
        self.position += 1;
        true
    }
}

impl TokenStream for PrefixTokenStream<'_> {
    fn advance(&mut self) -> bool {
        while self.next >= self.ends.len() {
            if !self.next_word() {
                return false;
            }
        }
        let end = self.ends[self.next];
        self.next += 1;
        self.token.text.clear();
        self.token.text.push_str(&self.word[..end]);
        self.token.offset_from = self.span.0;
        self.token.offset_to = self.span.1;
        self.token.position = self.position - 1;
        self.token.position_length = 1;
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut tokenizer = PrefixTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn no_lowered_word_holds_the_separator_of_body_words() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            if c.is_alphanumeric() {
                assert!(
                    !c.to_lowercase()
                        .any(|lowered| lowered == BODY_WORDS_SEPARATOR),
                    "{c:?}"
                );
            }
        }
        assert_eq!(
            body_words("Roadmap: the ROAD map, road"),
            "map road roadmap the"
        );
    }

    #[test]
    fn words_are_alphanumeric_runs() {
        let text = "Send foo.png to ÉMILE, ok?";
        let words: Vec<&str> = word_spans(text).map(|(s, e)| &text[s..e]).collect();
        assert_eq!(words, ["Send", "foo", "png", "to", "ÉMILE", "ok"]);
        assert_eq!(word_spans("  ..  ").count(), 0);
    }

    #[test]
    fn the_tokenizer_emits_short_prefixes_and_whole_words() {
        assert_eq!(tokens("Ab.c"), ["a", "ab", "c"]);
        assert_eq!(
            tokens("Éa ROADMAP"),
            ["é", "éa", "r", "ro", "roa", "roadmap"]
        );
        assert_eq!(tokens("abc"), ["a", "ab", "abc"]);
        assert_eq!(tokens("abcd"), ["a", "ab", "abc", "abcd"]);
        let long = "x".repeat(40);
        assert_eq!(tokens(&long), ["x", "xx", "xxx", long.as_str()]);
        assert!(tokens("").is_empty());
        assert!(tokens("..").is_empty());
    }

    #[test]
    fn query_words_are_lowered_and_deduplicated() {
        assert_eq!(query_words("Road ROADMAP road"), ["road", "roadmap"]);
        assert_eq!(query_words("foo.png"), ["foo", "png"]);
        assert!(query_words(" !? ").is_empty());
        assert!(is_short("abc") && is_short("é") && !is_short("abcd"));
    }

    #[test]
    fn snippets_mark_whole_words_and_escape_the_rest() {
        let words = query_words("roadm");
        assert_eq!(
            snippet("<b>Roadmap</b> & roadmaps", &words),
            "&lt;b&gt;<mark>Roadmap</mark>&lt;/b&gt; &amp; <mark>roadmaps</mark>"
        );
        assert_eq!(snippet("nothing here", &words), "nothing here");
        let long = format!("{} needle {}", "word ".repeat(100), "tail ".repeat(100));
        let cut = snippet(&long, &query_words("needle"));
        assert!(cut.starts_with('…') && cut.ends_with('…'), "{cut}");
        assert!(cut.contains("<mark>needle</mark>"));
        assert!(cut.chars().count() < SNIPPET_CHARS_MAX + 40);
    }
}
