//! Heuristic 2: plain e-mail addresses.

use std::sync::LazyLock;

use regex::Regex;

use super::obfuscated_emails::is_known_tld;
use super::text::{char_after, compile, hit, last_words, window_before};
use super::{ContactKind, ContactMatch};

static EMAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)[a-z0-9][a-z0-9._%+\-]{0,63}@[a-z0-9][a-z0-9\-]{0,62}(?:\.[a-z0-9][a-z0-9\-]{0,62})*\.[a-z]{2,24}\b",
    )
});

/// Retina asset suffixes (`icon@2x.png`): the part after `@` is a scale, not a domain.
static RETINA_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"(?i)^[0-9]+(?:\.[0-9]+)?x$"));

/// "Top-level domains" that are really file extensions (`logo@2x.png`, `hero@large.jpg`).
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "tif", "tiff", "pdf", "psd", "sketch",
    "fig", "xd", "js", "ts", "jsx", "tsx", "css", "scss", "html", "json", "xml", "yaml", "yml",
    "txt", "rar", "mp3", "mp4", "wav", "exe", "dmg", "apk", "heic", "avif", "ico", "woff", "woff2",
    "ttf", "otf", "csv", "xlsx", "docx", "pptx",
];

/// Commands whose argument looks like an e-mail but is a login on a server.
const SHELL_COMMANDS: &[&str] = &["ssh", "scp", "sftp", "rsync", "mosh", "telnet"];

pub(super) fn find_plain_emails(text: &str, found: &mut Vec<ContactMatch>) {
    for m in EMAIL_RE.find_iter(text) {
        let s = m.as_str();
        let Some((local, domain)) = s.split_once('@') else {
            continue;
        };
        let first_label = domain.split('.').next().unwrap_or("");
        if RETINA_RE.is_match(first_label) {
            continue;
        }
        // `hero@large.jpg` is a file; `alice@gmail.com.pdf` (a file name, H-C2) is an address
        // with a file extension after it: without the extension it still has a real TLD.
        let Some(end) = address_end(domain).map(|domain_end| m.end() - (domain.len() - domain_end))
        else {
            continue;
        };
        // `git@github.com:org/repo.git` is an SSH remote, not a mailbox.
        if local.eq_ignore_ascii_case("git")
            || (char_after(text, m.end()) == Some(':')
                && char_after(text, m.end() + 1).is_some_and(|c| !c.is_whitespace()))
        {
            continue;
        }
        // `user:pass@host.com` inside a URL is a credential of a web site, and
        // `ssh deploy@staging.example.com` is a server login: neither is a way to reach
        // the person.
        let (_, before) = window_before(text, m.start(), 200);
        let current_word = before.rsplit(char::is_whitespace).next().unwrap_or(before);
        if current_word.contains("://") {
            continue;
        }
        let previous = last_words(before, 1);
        if previous
            .first()
            .is_some_and(|w| SHELL_COMMANDS.contains(&w.as_str()))
            && before.ends_with(' ')
        {
            continue;
        }
        found.push(hit(ContactKind::Email, m.start(), end));
    }
}

/// Where the address's domain ends: all of it, or without a trailing file extension when what
/// remains still ends in a known TLD that is not one (`gmail.com.pdf` → `gmail.com`); none when
/// the domain is only a file name (`large.jpg`).
fn address_end(domain: &str) -> Option<usize> {
    let is_extension = |label: &str| FILE_EXTENSIONS.contains(&label.to_ascii_lowercase().as_str());
    let (rest, tld) = domain.rsplit_once('.')?;
    if !is_extension(tld) {
        return Some(domain.len());
    }
    let (_, inner_tld) = rest.rsplit_once('.')?;
    // A closed list here: `logo@brand.final.png` is a file name, not a mailbox at `final`.
    (is_known_tld(inner_tld) && !is_extension(inner_tld)).then_some(rest.len())
}
