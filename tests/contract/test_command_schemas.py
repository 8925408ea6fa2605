"""Property tests binding each command's JSON Schema (docs/schemas/command.<type>.json) to the
decoder of the real writer, over NATS:

- every payload the schema accepts is decoded: the writer's reply is never `invalid_command`
  (a rule may still refuse it: `forbidden`, `not_found`, …);
- a payload that breaks the schema in one field (the field left out, or a value of another JSON
  type) is refused with `invalid_command`, and the message names that field.

Payloads are generated from the schemas by hypothesis-jsonschema; how many per command type is
`PARLOR_CONTRACT_EXAMPLES` (default 25), so a run stays bounded.
"""

import os
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from conftest import REPOSITORY, command_types, load_schema

EXAMPLES = int(os.environ.get("PARLOR_CONTRACT_EXAMPLES", "25"))

# `format` is an annotation in draft 2020-12, and hypothesis-jsonschema knows no `uuid`; the
# decoder checks it: ids are UUIDs. Generate what the format says.
FORMATS = {
    "uuid": st.uuids().map(str),
}

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # Nothing is written into the work tree (no .hypothesis directory).
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def strategy(command_type):
    return from_schema(load_schema(f"command.{command_type}"), custom_formats=FORMATS)


def validator(command_type):
    schema = load_schema(f"command.{command_type}")
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("command_type", command_types())
def test_what_the_schema_accepts_the_decoder_accepts(command_type, writer):
    @SETTINGS
    @given(strategy(command_type))
    def check(envelope):
        reply = writer.send(command_type, envelope)
        note(f"reply: {reply}")
        if reply.get("ok"):
            return
        assert reply["error"]["code"] != "invalid_command", (
            f"{command_type}: a payload its schema accepts was refused as malformed: "
            f"{reply['error']['message']}"
        )

    check()


def wrong_type(value):
    """A value of another JSON type than `value`'s."""
    if isinstance(value, bool):
        return "true"
    if isinstance(value, (int, float)):
        return "1"
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return {"not": "a list"}
    if isinstance(value, dict):
        return ["not", "an", "object"]
    return 12345  # null


def mutations(envelope):
    """Each single-field change of `envelope`: (the field's name, the changed envelope)."""
    changed = []
    for key in list(envelope):
        without = {name: value for name, value in envelope.items() if name != key}
        changed.append((key, without))
        changed.append((key, {**envelope, key: wrong_type(envelope[key])}))
    data = envelope.get("data")
    if isinstance(data, dict):
        for key in list(data):
            without = {name: value for name, value in data.items() if name != key}
            changed.append((key, {**envelope, "data": without}))
            changed.append((key, {**envelope, "data": {**data, key: wrong_type(data[key])}}))
    return changed


@pytest.mark.parametrize("command_type", command_types())
def test_what_the_schema_refuses_the_decoder_refuses_naming_the_field(command_type, writer):
    schema_check = validator(command_type)

    @SETTINGS
    @given(strategy(command_type), st.data())
    def check(envelope, draw):
        field, changed = draw.draw(st.sampled_from(mutations(envelope)), label="mutation")
        # Only a change the schema refuses says anything (a field may be optional, or nullable).
        assume(not schema_check.is_valid(changed))
        reply = writer.send(command_type, changed)
        note(f"reply: {reply}")
        assert reply.get("ok") is not True, f"{command_type}: accepted {changed}"
        error = reply["error"]
        assert error["code"] == "invalid_command", f"{command_type}: {error}"
        assert re.search(rf"\b{re.escape(field)}\b", error["message"]), (
            f"{command_type}: the refusal does not name {field!r}: {error['message']}"
        )

    check()


def test_every_command_type_of_the_protocol_has_a_schema():
    # The types of docs/protocol.md §1's table (`| `a` / `b` (S) | … |` rows).
    protocol = (REPOSITORY / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = protocol.split("## 1.", 1)[1].split("## 2.", 1)[0]
    documented = set()
    for row in re.findall(r"^\| (`[a-z_.]+`(?: / `[a-z_.]+`)*)", section, flags=re.MULTILINE):
        documented.update(re.findall(r"`([a-z_.]+)`", row))
    assert documented and sorted(documented) == command_types()
