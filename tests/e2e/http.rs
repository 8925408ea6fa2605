//! The HTTP API of `parlor up`, as a frontend uses it (being written).
