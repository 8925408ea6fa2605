//! Reading a JSON object field by field, with messages that name the field and what was wrong
//! (`data.body: missing`, `data.visible: expected a boolean`). Unknown fields are never looked
//! at, which is what makes them ignored (forward compatibility).

use std::fmt::Display;

use domain::Timestamp;
use serde_json::{Map, Value};

use crate::spelling::Spelled;

/// A field's error message, already naming the field.
pub(crate) type FieldResult<T> = Result<T, String>;

/// The fields of one JSON object; `prefix` is its path (`data.`, `data.attachments[0].`).
pub(crate) struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    /// The fields of `object`, whose own path is `prefix` (empty at the top level, else ending
    /// with `.`).
    pub(crate) fn new(object: &'a Map<String, Value>, prefix: impl Into<String>) -> Fields<'a> {
        Fields {
            object,
            prefix: prefix.into(),
        }
    }

    /// The full path of field `name`.
    pub(crate) fn path(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// The value of `name`; absent and `null` are the same.
    fn value(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|value| !value.is_null())
    }

    /// Whether `name` is present and not `null`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    /// The value of a required field.
    fn required(&self, name: &str) -> FieldResult<&'a Value> {
        self.value(name)
            .ok_or_else(|| format!("{}: missing", self.path(name)))
    }

    /// Applies `read` to the field if present.
    fn optional<T>(
        &self,
        name: &str,
        read: impl FnOnce(&'a Value, &str) -> FieldResult<T>,
    ) -> FieldResult<Option<T>> {
        self.value(name)
            .map(|value| read(value, &self.path(name)))
            .transpose()
    }

    /// A required string.
    pub(crate) fn string(&self, name: &str) -> FieldResult<String> {
        expect_str(self.required(name)?, &self.path(name)).map(str::to_owned)
    }

    /// An optional string.
    pub(crate) fn optional_string(&self, name: &str) -> FieldResult<Option<String>> {
        self.optional(name, |value, path| {
            expect_str(value, path).map(str::to_owned)
        })
    }

    /// A required boolean.
    pub(crate) fn boolean(&self, name: &str) -> FieldResult<bool> {
        self.required(name)?
            .as_bool()
            .ok_or_else(|| format!("{}: expected a boolean", self.path(name)))
    }

    /// An optional boolean.
    pub(crate) fn optional_boolean(&self, name: &str) -> FieldResult<Option<bool>> {
        self.optional(name, |value, path| {
            value
                .as_bool()
                .ok_or_else(|| format!("{path}: expected a boolean"))
        })
    }

    /// A required non-negative integer that fits in a u64 (no fraction, no exponent).
    pub(crate) fn unsigned(&self, name: &str) -> FieldResult<u64> {
        expect_unsigned(self.required(name)?, &self.path(name))
    }

    /// An optional non-negative integer.
    pub(crate) fn optional_unsigned(&self, name: &str) -> FieldResult<Option<u64>> {
        self.optional(name, expect_unsigned)
    }

    /// An optional integer that fits in an i64.
    pub(crate) fn optional_signed(&self, name: &str) -> FieldResult<Option<i64>> {
        self.optional(name, |value, path| {
            value
                .as_i64()
                .ok_or_else(|| format!("{path}: expected an integer"))
        })
    }

    /// A required string parsed by `parse` (an id parser, say), whose error says what is wrong.
    pub(crate) fn parsed<T, E: Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> FieldResult<T> {
        parse_str(self.required(name)?, &self.path(name), parse)
    }

    /// An optional string parsed by `parse`.
    pub(crate) fn optional_parsed<T, E: Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> FieldResult<Option<T>> {
        self.optional(name, |value, path| parse_str(value, path, parse))
    }

    /// A required RFC 3339 timestamp.
    pub(crate) fn timestamp(&self, name: &str) -> FieldResult<Timestamp> {
        let path = self.path(name);
        let text = expect_str(self.required(name)?, &path)?;
        Timestamp::parse_rfc3339(text)
            .ok_or_else(|| format!("{path}: expected an RFC 3339 timestamp"))
    }

    /// A required string naming one value of `T`.
    pub(crate) fn choice<T: Spelled>(&self, name: &str) -> FieldResult<T> {
        expect_choice(self.required(name)?, &self.path(name))
    }

    /// An optional string naming one value of `T`.
    pub(crate) fn optional_choice<T: Spelled>(&self, name: &str) -> FieldResult<Option<T>> {
        self.optional(name, expect_choice)
    }

    /// A required array.
    pub(crate) fn array(&self, name: &str) -> FieldResult<&'a Vec<Value>> {
        expect_array(self.required(name)?, &self.path(name))
    }

    /// An optional array.
    pub(crate) fn optional_array(&self, name: &str) -> FieldResult<Option<&'a Vec<Value>>> {
        self.optional(name, expect_array)
    }

    /// An optional object.
    pub(crate) fn optional_object(
        &self,
        name: &str,
    ) -> FieldResult<Option<&'a Map<String, Value>>> {
        self.optional(name, expect_object)
    }

    /// A required object.
    pub(crate) fn object(&self, name: &str) -> FieldResult<&'a Map<String, Value>> {
        expect_object(self.required(name)?, &self.path(name))
    }
}

/// `value` as a string, or an error naming `path`.
pub(crate) fn expect_str<'v>(value: &'v Value, path: &str) -> FieldResult<&'v str> {
    value
        .as_str()
        .ok_or_else(|| format!("{path}: expected a string"))
}

/// `value` as an object, or an error naming `path`.
pub(crate) fn expect_object<'v>(
    value: &'v Value,
    path: &str,
) -> FieldResult<&'v Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| format!("{path}: expected an object"))
}

/// `value` as an array, or an error naming `path`.
fn expect_array<'v>(value: &'v Value, path: &str) -> FieldResult<&'v Vec<Value>> {
    value
        .as_array()
        .ok_or_else(|| format!("{path}: expected an array"))
}

/// `value` as a u64. serde_json reads negative, fractional and over-large numbers as i64 or
/// f64, which `as_u64` refuses, so they all land here.
fn expect_unsigned(value: &Value, path: &str) -> FieldResult<u64> {
    value.as_u64().ok_or_else(|| {
        format!(
            "{path}: expected a non-negative integer (at most {})",
            u64::MAX
        )
    })
}

/// `value` as a string parsed by `parse`.
pub(crate) fn parse_str<T, E: Display>(
    value: &Value,
    path: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> FieldResult<T> {
    parse(expect_str(value, path)?).map_err(|error| format!("{path}: {error}"))
}

/// `value` as the spelling of one value of `T`.
fn expect_choice<T: Spelled>(value: &Value, path: &str) -> FieldResult<T> {
    value.as_str().and_then(T::from_spelling).ok_or_else(|| {
        let names: Vec<&str> = T::ALL.iter().map(|choice| choice.spelling()).collect();
        format!("{path}: expected one of {}", names.join(", "))
    })
}
