//! The internal query contract's shared pieces (docs/queries.md): the read models by name and
//! the limits both sides of `<prefix>.query.<model>` apply, so that the gateway and the
//! projectors cannot disagree on them. Adding a model is one variant here; the compiler then
//! points at every `match` that must learn it.

/// A read model: its query subject is `<prefix>.query.<name>`, its queue group
/// `parlor-<name>`, its directory `<data_dir>/projections/<name>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadModel {
    /// The room list of each user.
    Rooms,
    /// Each room's messages.
    Timeline,
    /// Each room's files and links.
    Files,
    /// Full-text search over messages and rooms.
    Search,
    /// The moderators' queue of reports.
    Moderation,
    /// Batched notifications of unread messages.
    Notifications,
}

impl ReadModel {
    /// Every read model, in the order a process starts them.
    pub const ALL: [ReadModel; 6] = [
        ReadModel::Rooms,
        ReadModel::Timeline,
        ReadModel::Files,
        ReadModel::Search,
        ReadModel::Moderation,
        ReadModel::Notifications,
    ];

    /// The models the gateway queries (notifications answers no HTTP endpoint).
    pub const QUERIED_BY_THE_GATEWAY: [ReadModel; 5] = [
        ReadModel::Rooms,
        ReadModel::Timeline,
        ReadModel::Files,
        ReadModel::Search,
        ReadModel::Moderation,
    ];

    /// The names of [`ReadModel::ALL`], in the same order.
    pub const ALL_NAMES: [&'static str; 6] = [
        ReadModel::Rooms.name(),
        ReadModel::Timeline.name(),
        ReadModel::Files.name(),
        ReadModel::Search.name(),
        ReadModel::Moderation.name(),
        ReadModel::Notifications.name(),
    ];

    /// Its name (`rooms`, `timeline`, …).
    pub const fn name(self) -> &'static str {
        match self {
            ReadModel::Rooms => "rooms",
            ReadModel::Timeline => "timeline",
            ReadModel::Files => "files",
            ReadModel::Search => "search",
            ReadModel::Moderation => "moderation",
            ReadModel::Notifications => "notifications",
        }
    }

    /// The model called `name`, if any.
    pub fn from_name(name: &str) -> Option<ReadModel> {
        ReadModel::ALL
            .into_iter()
            .find(|model| model.name() == name)
    }

    /// Every name, comma-separated, for messages.
    pub fn names() -> String {
        ReadModel::ALL.map(ReadModel::name).join(", ")
    }
}

impl std::fmt::Display for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The largest query request accepted, in bytes. Requests are a handful of parameters.
pub const QUERY_REQUEST_BYTES_MAX: usize = 64 * 1024;

/// Items in a page when the request names no `limit` (protocol.md §3).
pub const PAGE_ITEMS_DEFAULT: usize = 50;

/// The most items in a page; a larger `limit` is lowered to this.
pub const PAGE_ITEMS_MAX: usize = 200;

/// Search results when `/v1/search` names no `limit` (protocol.md §3).
pub const SEARCH_RESULTS_DEFAULT: usize = 20;

/// The longest search text, in characters.
pub const SEARCH_QUERY_CHARS_MAX: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_is_found_by_its_name() {
        for model in ReadModel::ALL {
            assert_eq!(ReadModel::from_name(model.name()), Some(model));
        }
        assert_eq!(ReadModel::from_name("nope"), None);
        assert_eq!(ReadModel::ALL.map(ReadModel::name), ReadModel::ALL_NAMES);
        assert_eq!(
            ReadModel::names(),
            "rooms, timeline, files, search, moderation, notifications"
        );
    }
}
