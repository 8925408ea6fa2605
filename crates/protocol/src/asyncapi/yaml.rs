//! A YAML rendering of a JSON value, for `docs/asyncapi.yaml`: block mappings and sequences,
//! every string double-quoted with JSON's escapes (a YAML double-quoted scalar accepts them), so
//! no text can be read back as another type. Written here rather than taken from a crate: the
//! only YAML the project writes is this one document, and the maintained YAML serializers for
//! serde are forks of an archived one (docs/decisions.md).

use serde_json::Value;

/// `value` as a YAML document (a final newline included).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

/// A value that fits on the line of its key or dash: scalars and empty collections.
fn inline(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        // A JSON string literal is a valid YAML double-quoted scalar with the same value.
        scalar => scalar.to_string(),
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

/// A key written plain when it cannot be misread (no indicator, no YAML 1.1 boolean or null
/// word, not a number), double-quoted otherwise.
fn key(text: &str) -> String {
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "",
    ];
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$' | '/'))
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '$' || c == '_')
        && !WORDS.contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.to_owned()
    } else {
        Value::String(text.to_owned()).to_string()
    }
}

fn write_mapping(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (name, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key(name));
        out.push(':');
        write_child(out, value, indent);
    }
}

fn write_sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        match item {
            // `- key: value` with the mapping's other keys below the first: the mapping is
            // written two columns in, and its first line's indentation becomes the dash.
            Value::Object(map) if !map.is_empty() => {
                let mut mapping = String::new();
                write_mapping(&mut mapping, map, indent + 2);
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                out.push_str(&mapping[indent + 2..]);
            }
            _ => {
                out.push_str(&" ".repeat(indent));
                out.push('-');
                write_child(out, item, indent);
            }
        }
    }
}

/// After `key:` or `-`: an inline value on the same line, or a block indented below it.
fn write_child(out: &mut String, value: &Value, indent: usize) {
    if !is_block(value) {
        out.push(' ');
        out.push_str(&inline(value));
        out.push('\n');
        return;
    }
    out.push('\n');
    match value {
        Value::Object(map) => write_mapping(out, map, indent + 2),
        Value::Array(items) => write_sequence(out, items, indent + 2),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // serde_json's maps are sorted by key (no `preserve_order`), so the output is too.
    #[test]
    fn mappings_sequences_and_scalars_are_written_in_block_style() {
        let value = json!({
            "asyncapi": "3.0.0",
            "list": [1, {"a": true, "b": null}, [], {}, ["x"]],
            "on": "yes",
            "$ref": "#/components/schemas/X",
            "text": "line one\nline \"two\": ok",
            "200": 1.5
        });
        assert_eq!(
            to_yaml(&value),
            "$ref: \"#/components/schemas/X\"\n\"200\": 1.5\nasyncapi: \"3.0.0\"\n\
             list:\n  - 1\n  - a: true\n    b: null\n  - []\n  - {}\n  -\n    - \"x\"\n\
             \"on\": \"yes\"\ntext: \"line one\\nline \\\"two\\\": ok\"\n"
        );
    }
}
