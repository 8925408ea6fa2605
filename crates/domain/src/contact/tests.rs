//! Unit tests of the detector: examples of each heuristic, the look-alikes each must skip,
//! and odd inputs that must not panic.

use super::*;

fn kind(text: &str) -> Option<ContactKind> {
    find_contact_info(text).map(|m| m.kind)
}

fn matched(text: &str) -> Option<&str> {
    find_contact_info(text).map(|m| &text[m.start..m.end])
}

#[test]
fn contact_emails_plain_and_obfuscated() {
    assert_eq!(
        matched("write to anna.k@studio-north.io today"),
        Some("anna.k@studio-north.io")
    );
    assert_eq!(kind("name [at] mail [dot] com"), Some(ContactKind::Email));
    assert_eq!(kind("name (at) mail dot com"), Some(ContactKind::Email));
    assert_eq!(
        kind("reach me: name at gmail dot com"),
        Some(ContactKind::Email)
    );
    assert_eq!(
        kind("john.smith at gmail.com works"),
        Some(ContactKind::Email)
    );
    assert_eq!(kind("mike_d AT outlook DOT com"), Some(ContactKind::Email));
    assert_eq!(kind("jane @ protonmail . com"), Some(ContactKind::Email));
    assert_eq!(kind("jane{at}yahoo"), Some(ContactKind::Email));
    assert_eq!(
        matched("it's john dot smith at gmail dot com"),
        Some("john dot smith at gmail dot com")
    );
}

#[test]
fn contact_email_look_alikes_do_not_fire() {
    assert_eq!(kind("export icon@2x.png and icon@3x.png"), None);
    assert_eq!(kind("git clone git@github.com:acme/site.git"), None);
    assert_eq!(kind("run ssh deploy@staging.acme.dev first"), None);
    assert_eq!(kind("npm i @angular/core@17.0.0"), None);
    assert_eq!(kind("let's meet at noon"), None);
    assert_eq!(kind("look at the design dot com mockup"), None);
    assert_eq!(kind("I worked at acme.com for years"), None);
    assert_eq!(kind("thanks @maria.dev for the review"), None);
    // A file name with an address before its extension (H-C2) is an address; a file is not.
    assert_eq!(matched("alice@gmail.com.pdf"), Some("alice@gmail.com"));
    assert_eq!(kind("hero@large.jpg and logo@brand.final.png"), None);
}

#[test]
fn contact_phones() {
    assert_eq!(matched("call 555 123 4567 tonight"), Some("555 123 4567"));
    assert_eq!(
        matched("UK office +44.20.7946.0958"),
        Some("+44.20.7946.0958")
    );
    assert_eq!(
        matched("0 7 7 0 0 9 0 0 1 2 3"),
        Some("0 7 7 0 0 9 0 0 1 2 3")
    );
    assert_eq!(matched("(555) 123-4567"), Some("(555) 123-4567"));
    assert_eq!(matched("+ 49 30 1234567"), Some("+ 49 30 1234567"));
    assert_eq!(kind("call me on 555-1234"), Some(ContactKind::Phone));
    assert_eq!(kind("5551234567"), Some(ContactKind::Phone));
    assert_eq!(
        kind("five five five one two three four five six seven"),
        Some(ContactKind::Phone)
    );
}

#[test]
fn contact_numbers_that_are_not_phones() {
    for text in [
        "budget is $1,500 or 2500 USD, €30/hour",
        "on 2026-11-27 14:30, or 27.11.2026, or 11/27/2026",
        "v1.2.3 and 2.10.14 and 2.10.15",
        "1920x1080 and 4K, 99.9% uptime",
        "order 123456789 shipped",
        "invoice 2026-0042-17",
        "10-15 hours, maybe 20-25",
        "2019 2020 2021 2022",
        "1 2 3 4 5 6 7 8 9 10",
        "ip 192.168.100.200",
        "ISBN 978-3-16-148410-0",
        "pi is 3.14159265",
        "1 500 000 000 IDR",
        "one two three four five six seven eight nine",
    ] {
        assert_eq!(find_contact_info(text), None, "{text}");
    }
}

#[test]
fn contact_messengers() {
    assert_eq!(kind("wa.me/15551234567"), Some(ContactKind::Messenger));
    assert_eq!(kind("https://t.me/johnsmith"), Some(ContactKind::Messenger));
    assert_eq!(kind("t dot me / johnsmith"), Some(ContactKind::Messenger));
    assert_eq!(
        matched("my telegram is @john_smith"),
        Some("telegram is @john_smith")
    );
    assert_eq!(kind("tele gram: @jsmith"), Some(ContactKind::Messenger));
    assert_eq!(
        kind("skype: live:.cid.3f8a1b2c"),
        Some(ContactKind::Messenger)
    );
    assert_eq!(
        kind("add me on skype, name is john.smith"),
        Some(ContactKind::Messenger)
    );
    assert_eq!(kind("my skype is johnsmith"), Some(ContactKind::Messenger));
    assert_eq!(kind("discord: nightowl#4821"), Some(ContactKind::Messenger));
    assert_eq!(kind("@jsmith92 on signal"), Some(ContactKind::Messenger));
    assert_eq!(kind("whats app me"), None);
    assert_eq!(kind("my skype is broken"), None);
    assert_eq!(kind("I built a Telegram bot, @john please review"), None);
    assert_eq!(kind("@anna can you check the layout?"), None);
}

#[test]
fn contact_payments() {
    assert_eq!(kind("paypal.me/johnsmith"), Some(ContactKind::Payment));
    assert_eq!(kind("venmo @John-Smith-12"), Some(ContactKind::Payment));
    assert_eq!(kind("cash app $jsmith"), Some(ContactKind::Payment));
    assert_eq!(kind("$jsmith on cashapp"), Some(ContactKind::Payment));
    assert_eq!(kind("https://cash.app/$jsmith"), Some(ContactKind::Payment));
    assert_eq!(kind("PayPal fees are high"), None);
    assert_eq!(kind("echo $HOME"), None);
}

#[test]
fn contact_iban_and_cards() {
    assert_eq!(
        kind("IBAN DE89 3704 0044 0532 0130 00 thanks"),
        Some(ContactKind::Iban)
    );
    assert_eq!(
        matched("GB82WEST12345698765432"),
        Some("GB82WEST12345698765432")
    );
    assert_eq!(
        kind("card 4111 1111 1111 1111"),
        Some(ContactKind::CardNumber)
    );
    assert_eq!(
        kind("amex 3782 822463 10005"),
        Some(ContactKind::CardNumber)
    );
    // Luhn fails: a 16-digit reference, not a card, and too long for a phone.
    assert_eq!(kind("ref 4111 1111 1111 1112"), None);
    assert_eq!(kind("DE12 is our team code"), None);
}

#[test]
fn contact_all_matches_are_ordered_and_disjoint() {
    let text = "mail a@b.com or call +1 555 123 4567, skype: john.smith";
    let all = find_all_contact_info(text);
    let kinds: Vec<ContactKind> = all.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            ContactKind::Email,
            ContactKind::Phone,
            ContactKind::Messenger
        ]
    );
    assert!(all.windows(2).all(|w| w[0].end <= w[1].start));
}

#[test]
fn contact_odd_inputs_do_not_panic() {
    let long_digits = "7".repeat(10_000);
    let spaced_digits = "1 ".repeat(5_000);
    let ats = "a@".repeat(5_000);
    let mixed = "Привет 你好 مرحبا 👋🏽 e\u{301} ＠ ５５５ १२३ ".repeat(200);
    let inputs: Vec<String> = vec![
        String::new(),
        " ".into(),
        "@".into(),
        "+".into(),
        "$".into(),
        "...,,,;;;!!!???".into(),
        "(((((((((()))))))))".into(),
        // Case-insensitive Unicode classes match these multi-byte letters as `k` and `s`.
        "\u{212A}\u{212A}89 3704 0044 0532 0130 00 \u{17F}kype: \u{212A}elvin_1".into(),
        "\u{17F}\u{17F}12345678901234 john [at] \u{212A}mail [dot] com".into(),
        "[at][dot][at][dot]".into(),
        " at  at  dot  dot ".into(),
        "@@@@@@@@@@".into(),
        long_digits,
        spaced_digits,
        ats,
        mixed,
        "telegram ".repeat(1_000),
        "skype: ".repeat(1_000),
        "DE89".repeat(1_000),
        "é1 2 3 4 5 6 7 8 9é".into(),
        "\u{0}\u{1}\u{7f}\u{feff}\u{200b}".into(),
        "+😀1 2 3 4 5 6 7 8 9".into(),
        "😀@😀.😀 [at] 😀 dot 😀".into(),
        "tele\u{301}gram @ü".into(),
    ];
    for input in &inputs {
        let all = find_all_contact_info(input);
        for m in &all {
            assert!(m.start <= m.end && m.end <= input.len());
            assert!(input.is_char_boundary(m.start) && input.is_char_boundary(m.end));
        }
        let _ = find_contact_info(input);
    }
}
