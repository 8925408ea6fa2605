//! Every published name renders, and the schemas agree with real JSON the crate writes.

use domain::command::COMMAND_TYPES;
use domain::event::EVENT_TYPES;
use serde_json::Value;

use super::*;

#[test]
fn every_published_name_renders_a_draft_2020_12_document() {
    let published = published();
    assert_eq!(
        published.len(),
        COMMAND_TYPES.len() + EVENT_TYPES.len() + MESSAGES.len()
    );
    for entry in published {
        let document = render(&entry.name).unwrap_or_else(|| panic!("{} renders", entry.name));
        assert_eq!(
            document["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{}",
            entry.name
        );
        assert_eq!(document["title"], entry.name.as_str());
    }
}

#[test]
fn unknown_names_render_nothing() {
    assert_eq!(render("command.no.such"), None);
    assert_eq!(render("event.no_such"), None);
    assert_eq!(render("NoSuch"), None);
}

#[test]
fn each_event_schema_fixes_its_type_and_describes_its_data_fields() {
    for event_type in EVENT_TYPES {
        let document = render(&event_schema_name(event_type)).unwrap_or_default();
        let branch = &document["allOf"][0]["properties"];
        assert_eq!(branch["type"]["const"], event_type);
        assert_eq!(branch["data"]["type"], "object", "{event_type}");
        assert!(
            branch["data"]["properties"]
                .as_object()
                .is_some_and(|p| !p.is_empty()),
            "{event_type} has data fields"
        );
    }
}

#[test]
fn command_envelopes_require_data_except_clear_out_of_office() {
    for command_type in COMMAND_TYPES {
        let document = render(&command_schema_name(command_type)).unwrap_or_default();
        let required: Vec<&str> = document["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(required.contains(&"command_id") && required.contains(&"actor"));
        assert_eq!(
            required.contains(&"data"),
            command_type != "user.clear_out_of_office",
            "{command_type}"
        );
    }
}
