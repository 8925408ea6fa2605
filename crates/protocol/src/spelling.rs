//! The protocol's spelling of the domain's enums (`mobile_web`, `every_15_minutes`), one
//! exhaustive match per enum, used to read and write JSON.
//!
//! The domain's serde names are snake_case too, with one difference: serde spells
//! `NotificationFrequency::Every15Minutes` as `every15_minutes`, the protocol (rules.md R-A3) as
//! `every_15_minutes`. The JSON this crate writes uses the protocol's spelling everywhere,
//! including event data and notifications ([`frequency_serde`], [`event_data_to_protocol`]).

use domain::{CallMedia, Client, NotificationFrequency, ReportReason, UserKind};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A closed set of values spelled as snake_case strings in the protocol (the domain's enums).
///
/// `spelling` is an exhaustive match, so a new variant cannot go unspelled; a test checks that
/// `ALL` lists every variant and that the spelling equals the domain's serde name.
pub(crate) trait Spelled: Copy + PartialEq + 'static {
    /// Every value.
    const ALL: &'static [Self];

    /// The protocol's spelling.
    fn spelling(self) -> &'static str;

    /// The value spelled `text`, if any.
    fn from_spelling(text: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|choice| choice.spelling() == text)
    }
}

impl Spelled for Client {
    const ALL: &'static [Client] = &[Client::Desktop, Client::MobileWeb, Client::MobileApp];

    fn spelling(self) -> &'static str {
        match self {
            Client::Desktop => "desktop",
            Client::MobileWeb => "mobile_web",
            Client::MobileApp => "mobile_app",
        }
    }
}

impl Spelled for UserKind {
    const ALL: &'static [UserKind] = &[UserKind::Client, UserKind::Freelancer, UserKind::Agency];

    fn spelling(self) -> &'static str {
        match self {
            UserKind::Client => "client",
            UserKind::Freelancer => "freelancer",
            UserKind::Agency => "agency",
        }
    }
}

impl Spelled for NotificationFrequency {
    const ALL: &'static [NotificationFrequency] = &[
        NotificationFrequency::Immediate,
        NotificationFrequency::Every15Minutes,
        NotificationFrequency::Hourly,
        NotificationFrequency::Daily,
        NotificationFrequency::Off,
    ];

    fn spelling(self) -> &'static str {
        match self {
            NotificationFrequency::Immediate => "immediate",
            NotificationFrequency::Every15Minutes => "every_15_minutes",
            NotificationFrequency::Hourly => "hourly",
            NotificationFrequency::Daily => "daily",
            NotificationFrequency::Off => "off",
        }
    }
}

impl Spelled for CallMedia {
    const ALL: &'static [CallMedia] = &[CallMedia::Audio, CallMedia::Video];

    fn spelling(self) -> &'static str {
        match self {
            CallMedia::Audio => "audio",
            CallMedia::Video => "video",
        }
    }
}

impl Spelled for ReportReason {
    const ALL: &'static [ReportReason] = &[
        ReportReason::PaymentOutsidePlatform,
        ReportReason::ContactInfoBeforeContract,
        ReportReason::SuspiciousLink,
        ReportReason::AbusiveLanguage,
        ReportReason::Other,
    ];

    fn spelling(self) -> &'static str {
        match self {
            ReportReason::PaymentOutsidePlatform => "payment_outside_platform",
            ReportReason::ContactInfoBeforeContract => "contact_info_before_contract",
            ReportReason::SuspiciousLink => "suspicious_link",
            ReportReason::AbusiveLanguage => "abusive_language",
            ReportReason::Other => "other",
        }
    }
}

/// The domain's serde name of `value` (what serde_json writes for it), if it is a string.
fn serde_name<T: Serialize>(value: T) -> Option<String> {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => Some(name),
        _ => None,
    }
}

/// The event types whose data holds a `frequency` field.
const FREQUENCY_EVENT_TYPES: [&str; 1] = ["notification_frequency_changed"];

/// Rewrites the `frequency` of an event's JSON data from the domain's serde name to the
/// protocol's spelling (a no-op once the two agree).
pub(crate) fn event_data_to_protocol(type_name: &str, data: &mut Map<String, Value>) {
    respell_frequency(type_name, data, |frequency| {
        (serde_name(frequency), frequency.spelling().to_owned())
    });
}

/// Rewrites the `frequency` of an event's JSON data from the protocol's spelling to the
/// domain's serde name, so that serde can read it.
pub(crate) fn event_data_from_protocol(type_name: &str, data: &mut Map<String, Value>) {
    respell_frequency(type_name, data, |frequency| {
        (
            Some(frequency.spelling().to_owned()),
            serde_name(frequency).unwrap_or_default(),
        )
    });
}

/// Replaces `data.frequency` when it equals the first name `names` gives for some frequency.
fn respell_frequency(
    type_name: &str,
    data: &mut Map<String, Value>,
    names: impl Fn(NotificationFrequency) -> (Option<String>, String),
) {
    if !FREQUENCY_EVENT_TYPES.contains(&type_name) {
        return;
    }
    let Some(Value::String(current)) = data.get_mut("frequency") else {
        return;
    };
    for frequency in NotificationFrequency::ALL {
        let (from, to) = names(*frequency);
        if from.as_deref() == Some(current.as_str()) {
            *current = to;
            return;
        }
    }
}

/// Serde of a [`NotificationFrequency`] field: the protocol's spelling in JSON, the domain's
/// own encoding in bincode. For `#[serde(with = "…")]` on types that are also bincoded.
pub(crate) mod frequency_serde {
    use super::*;

    /// Writes the spelling (JSON) or the domain's encoding (bincode).
    pub(crate) fn serialize<S: Serializer>(
        frequency: &NotificationFrequency,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(frequency.spelling())
        } else {
            frequency.serialize(serializer)
        }
    }

    /// Reads the spelling (JSON) or the domain's encoding (bincode).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<NotificationFrequency, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            NotificationFrequency::from_spelling(&text).ok_or_else(|| {
                let names: Vec<&str> = NotificationFrequency::ALL
                    .iter()
                    .map(|frequency| frequency.spelling())
                    .collect();
                D::Error::custom(format!("frequency: expected one of {}", names.join(", ")))
            })
        } else {
            NotificationFrequency::deserialize(deserializer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the table: every value spelled once, and spelled as serde names it, except
    /// `Every15Minutes` (see the module documentation).
    fn spellings_match_serde<T: Spelled + Serialize + std::fmt::Debug>(count: usize) {
        assert_eq!(T::ALL.len(), count);
        for choice in T::ALL {
            let serde = serde_name(*choice);
            if choice.spelling() != "every_15_minutes" {
                assert_eq!(serde.as_deref(), Some(choice.spelling()));
            }
            assert_eq!(T::from_spelling(choice.spelling()), Some(*choice));
        }
    }

    #[test]
    fn every_spelling_matches_the_domains_serde_name() {
        spellings_match_serde::<Client>(3);
        spellings_match_serde::<UserKind>(3);
        spellings_match_serde::<NotificationFrequency>(5);
        spellings_match_serde::<CallMedia>(2);
        spellings_match_serde::<ReportReason>(5);
    }

    #[test]
    fn event_data_uses_the_protocols_frequency_spelling_both_ways() {
        let domain_name = serde_name(NotificationFrequency::Every15Minutes).unwrap_or_default();
        let mut data = Map::new();
        data.insert("frequency".into(), Value::String(domain_name.clone()));
        event_data_to_protocol("notification_frequency_changed", &mut data);
        assert_eq!(
            data.get("frequency"),
            Some(&Value::from("every_15_minutes"))
        );
        event_data_from_protocol("notification_frequency_changed", &mut data);
        assert_eq!(data.get("frequency"), Some(&Value::from(domain_name)));
    }
}
