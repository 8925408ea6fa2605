"""The reference web client in a real browser against the real `parlor up` (issue 18): two
people, each in their own browser context, see each other's changes live; refusals read as
sentences. Every wait is on a selector or an assertion, never on time."""

import datetime
import json
import re
import struct
import zlib

from axe_playwright_python.sync_playwright import Axe
from conftest import REPOSITORY
from playwright.sync_api import expect

HOUR_AND_A_MINUTE_MS = 61 * 60 * 1000
# The client's page of messages (app.js MESSAGES_PAGE_LIMIT).
MESSAGES_PAGE = 50


def png(width, height):
    """A small valid PNG (a colour gradient), made here so the tests ship no binary files."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 128)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def room_item(page, room_id=None):
    items = page.get_by_test_id("room-item")
    return items.and_(page.locator(f"[data-room-id='{room_id}']")) if room_id else items


def message_with(page, text):
    return page.get_by_test_id("message").filter(has=page.get_by_test_id("message-body").get_by_text(text, exact=True))


def send(page, text):
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("send").click()
    expect(message_with(page, text)).to_be_visible()


def start_direct(page, to, text):
    page.get_by_test_id("new-direct-to").fill(to)
    page.get_by_label("First message").fill(text)
    page.get_by_role("button", name="Start").click()
    expect(message_with(page, text)).to_be_visible()


def test_the_client_is_served_without_a_token_with_its_content_types(parlor):
    status, headers, body = parlor.http("GET", "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert b'data-testid="sign-in"' in body
    status, headers, _ = parlor.http("GET", "/assets/app.js")
    assert (status, headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
    status, _, body = parlor.http("GET", "/assets/missing.js")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_every_documented_error_code_has_a_sentence():
    """A code added to the contract without a sentence would reach people as the fallback."""
    protocol = (REPOSITORY / "docs" / "protocol.md").read_text()
    api = (REPOSITORY / "docs" / "api.md").read_text()
    section = protocol[protocol.index("Error codes:") : protocol.index("## 2.")]
    table = api[api.index("| status | code | when |") : api.index("A command's own rejections")]
    documented = set(re.findall(r"`([a-z_]+)`", section)) | set(re.findall(r"\| `([a-z_]+)`", table))
    documented -= {"command_id"}
    sentences = (REPOSITORY / "crates" / "gateway" / "web" / "sentences.js").read_text()
    translated = set(re.findall(r"^  ([a-z_]+):", sentences, re.MULTILINE))
    assert len(documented) > 20
    assert documented - translated == set()


def test_signing_in_by_pasting_a_token_keeps_it_in_the_tab_only(browser, parlor, screenshots):
    _, token = parlor.register("Alice")
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        page = context.new_page()
        page.goto(parlor.base_url + "/")
        page.get_by_test_id("token-input").fill("not a token")
        page.get_by_test_id("sign-in").click()
        expect(page.get_by_test_id("error-banner")).to_have_text(
            "Your sign-in is no longer valid. Paste a new token to continue."
        )
        page.screenshot(path=str(screenshots / "sign-in.png"))
        streams = []
        page.on("request", lambda request: streams.append(request) if request.url.endswith("/v1/events") else None)
        page.get_by_test_id("token-input").fill(token)
        page.get_by_test_id("sign-in").click()
        expect(page.get_by_test_id("room-list")).to_be_visible()
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        # The stream starts where the room list was read (its Parlor-Position): no gap between.
        assert streams[0].headers.get("last-event-id", "").isdigit(), streams[0].headers
        assert streams[0].headers["authorization"] == f"Bearer {token}"
        assert "token" not in streams[0].url
        assert page.evaluate("sessionStorage.getItem('parlor.token')") == token
        assert page.evaluate("localStorage.length") == 0
    finally:
        context.close()


def test_a_first_message_opens_the_room_on_both_sides_live(parlor, open_client, screenshots):
    alice_id, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    alice = open_client(alice_token)
    bob = open_client(bob_token)

    start_direct(alice, bob_id, "Hello Bob, are you free for a call?")
    expect(room_item(alice)).to_have_count(1)
    room_id = room_item(alice).get_attribute("data-room-id")

    # Bob's list gets the room live, with its unread badge.
    bob_room = room_item(bob, room_id)
    expect(bob_room).to_be_visible()
    expect(bob_room.get_by_test_id("unread-badge")).to_have_text("1")
    bob_room.get_by_role("button").click()
    expect(message_with(bob, "Hello Bob, are you free for a call?")).to_be_visible()
    # Opening it read it.
    expect(bob_room.get_by_test_id("unread-badge")).to_have_count(0)

    send(bob, "Yes, after lunch.")
    expect(message_with(alice, "Yes, after lunch.")).to_be_visible()
    # Alice has the room open: once her list shows the reply, it shows it read.
    alice_room = room_item(alice, room_id)
    expect(alice_room).to_contain_text("Yes, after lunch.")
    expect(alice_room.get_by_test_id("unread-badge")).to_have_count(0)
    alice.screenshot(path=str(screenshots / "conversation.png"))


def test_the_live_stream_resumes_after_a_dropped_connection_with_last_event_id(parlor, open_client, dropping_proxy):
    alice_id, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    alice = open_client(alice_token, base_url=f"http://127.0.0.1:{dropping_proxy.port}")
    start_direct(alice, bob_id, "Before the drop")
    room_id = parlor.command(bob_token, "message.send", {"to": alice_id, "body": "Seen live"})["room_id"]
    expect(message_with(alice, "Seen live")).to_be_visible()

    resumed_from = []
    alice.on(
        "request",
        lambda request: resumed_from.append(request.headers.get("last-event-id"))
        if request.url.endswith("/v1/events")
        else None,
    )
    dropping_proxy.drop_and_refuse()
    expect(alice.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    # Sent while Alice's stream is down: it reaches her once it resumes, without a reload.
    parlor.command(bob_token, "message.send", {"room_id": room_id, "body": "Sent during the drop"})
    dropping_proxy.accept_again()
    expect(message_with(alice, "Sent during the drop")).to_be_visible()
    expect(alice.locator("#connection")).to_have_attribute("data-state", "live")
    assert resumed_from and all(header and header.isdigit() for header in resumed_from), resumed_from


def test_reply_edit_and_delete_show_on_the_other_side_live(parlor, open_client):
    _, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    alice = open_client(alice_token)
    bob = open_client(bob_token)
    start_direct(alice, bob_id, "The draft is ready")
    room_item(bob).first.get_by_role("button").click()
    original = message_with(bob, "The draft is ready")
    expect(original).to_be_visible()

    # Bob replies; Alice edits her message; Bob sees the new body live.
    original.get_by_test_id("message-reply").click()
    send(bob, "Thanks, reading it now")
    expect(message_with(alice, "Thanks, reading it now").locator(".reply-to")).to_contain_text("The draft is ready")
    message_with(alice, "The draft is ready").get_by_test_id("message-edit").click()
    alice.get_by_test_id("composer").fill("The final draft is ready")
    alice.get_by_test_id("send").click()
    expect(message_with(bob, "The final draft is ready")).to_be_visible()
    expect(message_with(bob, "The final draft is ready")).to_contain_text("edited")

    # Alice deletes it; Bob sees the tombstone, and his reply shows the original as removed.
    message_with(alice, "The final draft is ready").get_by_test_id("message-delete").click()
    expect(message_with(alice, "This message was deleted")).to_be_visible()
    expect(message_with(bob, "This message was deleted")).to_be_visible()
    expect(message_with(bob, "The final draft is ready")).to_have_count(0)
    bob.reload()
    room_item(bob).first.get_by_role("button").click()
    expect(message_with(bob, "Thanks, reading it now").locator(".reply-to")).to_have_text(
        "Replying to a message that was removed"
    )


def test_favorite_and_hide_move_a_room_between_views_and_a_new_message_unhides_it(parlor, open_client):
    alice_id, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    alice = open_client(alice_token)
    start_direct(alice, bob_id, "Quote attached")
    expect(room_item(alice)).to_have_count(1)
    room_id = room_item(alice).get_attribute("data-room-id")

    alice.get_by_role("button", name="Favorite", exact=True).click()
    expect(alice.get_by_role("button", name="Favorite", exact=True)).to_have_attribute("aria-pressed", "true")
    alice.get_by_role("button", name="Favorites", exact=True).click()
    expect(room_item(alice, room_id)).to_be_visible()

    alice.get_by_role("button", name="Hide", exact=True).click()
    expect(alice.get_by_role("button", name="Hide", exact=True)).to_have_attribute("aria-pressed", "true")
    alice.get_by_role("button", name="Inbox", exact=True).click()
    expect(alice.get_by_test_id("room-list")).to_contain_text("No conversations here yet.")
    alice.get_by_role("button", name="Hidden", exact=True).click()
    expect(room_item(alice, room_id)).to_be_visible()

    alice.get_by_role("button", name="Inbox", exact=True).click()
    # R-S2: a new message brings a hidden room back into the inbox, live.
    parlor.command(bob_token, "message.send", {"room_id": room_id, "body": "Any news?"})
    expect(room_item(alice, room_id)).to_be_visible()
    expect(room_item(alice, room_id)).to_contain_text("Any news?")


def test_an_image_upload_shows_its_thumbnail_in_the_timeline_and_the_files_panel(parlor, open_client, screenshots):
    _, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    alice = open_client(alice_token)
    bob = open_client(bob_token)
    start_direct(alice, bob_id, "Here is the mock-up")
    alice.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "mock-up.png", "mimeType": "image/png", "buffer": png(320, 200)}]
    )
    expect(alice.locator("#pending-files")).to_contain_text("mock-up.png")
    send(alice, "The picture")

    room_item(bob).first.get_by_role("button").click()
    picture = message_with(bob, "The picture").locator("img.preview")
    expect(picture).to_be_visible()
    bob.wait_for_function("image => image.complete && image.naturalWidth === 256", arg=picture.element_handle())

    bob.get_by_role("button", name="Files and links").click()
    expect(bob.get_by_test_id("files-panel")).to_be_visible()
    file_item = bob.get_by_test_id("file-item").filter(has_text="mock-up.png")
    expect(file_item).to_be_visible()
    bob.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=file_item.locator("img").element_handle()
    )
    expect(room_item(bob).first.get_by_test_id("unread-badge")).to_have_count(0)
    bob.screenshot(path=str(screenshots / "files.png"))


def test_links_show_their_provider_in_the_timeline_and_the_files_panel_and_contact_details_are_refused(
    parlor, open_client
):
    _, alice_token = parlor.register("Alice")
    bob_id, _ = parlor.register("Bob")
    alice = open_client(alice_token)
    start_direct(alice, bob_id, "Files follow")
    send(alice, "The plan is at https://www.dropbox.com/s/abc123/plan.pdf.")
    link = message_with(alice, "The plan is at https://www.dropbox.com/s/abc123/plan.pdf.").locator(".attachments li")
    expect(link).to_have_text("https://www.dropbox.com/s/abc123/plan.pdf (dropbox)")

    alice.get_by_role("button", name="Files and links").click()
    expect(alice.get_by_test_id("file-item")).to_have_count(1)
    expect(alice.get_by_test_id("file-item")).to_contain_text("(dropbox)")

    alice.get_by_test_id("composer").fill("Write to me at alice@example.com")
    alice.get_by_test_id("send").click()
    expect(alice.get_by_test_id("error-banner")).to_have_text(
        "Contact details (e-mail addresses, phone numbers, outside links) can only be shared once a contract is active."
    )
    expect(alice.get_by_test_id("composer")).to_have_value("Write to me at alice@example.com")


def test_a_report_with_its_reason_reaches_the_moderation_queue(parlor, open_client):
    _, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    room_id = parlor.command(alice_token, "message.send", {"to": bob_id, "body": "Pay me outside"})["room_id"]
    bob = open_client(bob_token)
    room_item(bob, room_id).get_by_role("button").click()
    message = message_with(bob, "Pay me outside")
    message.get_by_test_id("report-message").click()
    bob.get_by_label("Reason").select_option("payment_outside_platform")
    bob.get_by_label("Details (optional)").fill("Asked to pay by bank transfer")
    bob.get_by_role("button", name="Send report").click()
    expect(bob.locator("#report")).to_be_hidden()
    expect(bob.get_by_test_id("error-banner")).to_be_hidden()

    # Read at the log's head (the writer's position now), so the queue includes the report.
    head = json.loads(parlor.ops_health())["parts"]["writer"]["position"]
    moderator = parlor.token("moderator-on-duty", "--moderator")
    status, _, body = parlor.http("GET", f"/v1/moderation/reports?min_position={head}", moderator)
    reports = [
        report
        for report in json.loads(body)["reports"]
        if report["message_id"] == message.get_attribute("data-message-id")
    ]
    assert status == 200 and [(report["reason"], report["details"]) for report in reports] == [
        ("payment_outside_platform", "Asked to pay by bank transfer")
    ], (status, body)


def test_search_finds_a_message_from_before_a_member_joined(parlor, open_client, screenshots):
    _, alice_token = parlor.register("Alice")
    bob_id, _ = parlor.register("Bob")
    carol_id, carol_token = parlor.register("Carol")
    alice = open_client(alice_token)
    alice.get_by_text("New group").click()
    alice.get_by_label("Name", exact=True).fill("Launch team")
    alice.get_by_label("Members (user ids, comma separated)").fill(bob_id)
    alice.get_by_role("button", name="Create group").click()
    expect(alice.locator("#room-name")).to_have_text("Launch team")
    send(alice, "The pineapple milestone is due Friday")
    alice.prompt_answers.append(carol_id)
    alice.get_by_role("button", name="Add member").click()
    expect(alice.locator("#room-members")).to_contain_text("Carol")

    carol = open_client(carol_token)
    carol.get_by_test_id("search-input").fill("pineapple")
    carol.get_by_test_id("search-input").press("Enter")
    hit = carol.get_by_test_id("search-result").filter(has_text="milestone")
    expect(hit).to_be_visible()
    expect(hit.locator("mark")).to_have_text("pineapple")
    carol.screenshot(path=str(screenshots / "search.png"))


def test_a_blocked_users_composer_says_why_it_cannot_send(parlor, open_client):
    _, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    alice = open_client(alice_token)
    bob = open_client(bob_token)
    start_direct(alice, bob_id, "Can we talk about the budget?")
    room_item(bob).first.get_by_role("button").click()
    expect(message_with(bob, "Can we talk about the budget?")).to_be_visible()
    bob.get_by_test_id("block-user").click()
    expect(bob.locator("#notice")).to_contain_text("You blocked Alice")
    expect(bob.get_by_test_id("error-banner")).to_be_hidden()

    alice.get_by_test_id("composer").fill("Hello?")
    alice.get_by_test_id("send").click()
    expect(alice.get_by_test_id("error-banner")).to_have_text(
        "You cannot send messages here: one of you has blocked the other."
    )
    expect(message_with(alice, "Hello?")).to_have_count(0)
    # Nothing typed is lost.
    expect(alice.get_by_test_id("composer")).to_have_value("Hello?")


def test_out_of_office_set_in_settings_shows_a_banner_and_answers_once(parlor, open_client):
    alice_id, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    bob = open_client(bob_token)
    bob.get_by_role("button", name="Settings").click()
    bob.get_by_label("Notifications").select_option("hourly")
    expect(bob.locator("#settings-status")).to_have_text("Notifications: hourly.")
    bob.get_by_label("Away message").fill("On holiday, back Monday")
    until = (datetime.datetime.now() + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    bob.get_by_label("Until", exact=True).fill(until)
    bob.get_by_role("button", name="Set out of office").click()
    expect(bob.locator("#settings-status")).to_contain_text("Out of office until")
    bob.get_by_role("button", name="Close").click()

    alice = open_client(alice_token)
    start_direct(alice, bob_id, "Are you around this week?")
    expect(alice.locator("#away-banners")).to_contain_text("is away until")
    expect(alice.locator("#away-banners")).to_contain_text("On holiday, back Monday")
    automatic = alice.get_by_test_id("message").filter(has_text="(automatic reply)")
    expect(automatic).to_have_count(1)
    expect(automatic.get_by_test_id("message-body")).to_have_text("On holiday, back Monday")


def test_a_call_is_recorded_in_the_room_and_either_side_can_end_it(parlor, open_client):
    _, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    alice = open_client(alice_token)
    bob = open_client(bob_token)
    start_direct(alice, bob_id, "Call now?")
    room_item(bob).first.get_by_role("button").click()
    expect(message_with(bob, "Call now?")).to_be_visible()
    alice.get_by_role("button", name="Start call").click()
    expect(message_with(bob, "Audio call going on")).to_be_visible()
    message_with(bob, "Audio call going on").get_by_role("button", name="End call").click()
    ended = alice.get_by_test_id("message").filter(has=alice.locator(".call"))
    expect(ended.get_by_test_id("message-body")).to_have_text(re.compile(r"^Audio call, \d+ s$"))
    expect(ended.get_by_role("button", name="End call")).to_have_count(0)
    # One call at a time: a second start while one runs is explained, not shown as a code.
    alice.get_by_role("button", name="Start call").click()
    expect(message_with(bob, "Audio call going on")).to_have_count(1)
    bob.get_by_role("button", name="Start call").click()
    expect(bob.get_by_test_id("error-banner")).to_have_text("A call is already going on in this room.")


def test_older_messages_load_a_page_at_a_time(parlor, open_client):
    _, alice_token = parlor.register("Alice")
    bob_id, _ = parlor.register("Bob")
    room_id = parlor.command(alice_token, "message.send", {"to": bob_id, "body": "Message 1"})["room_id"]
    for number in range(2, MESSAGES_PAGE + 6):
        parlor.command(alice_token, "message.send", {"room_id": room_id, "body": f"Message {number}"})
    alice = open_client(alice_token)
    room_item(alice, room_id).get_by_role("button").click()
    expect(message_with(alice, f"Message {MESSAGES_PAGE + 5}")).to_be_visible()
    expect(alice.get_by_test_id("message")).to_have_count(MESSAGES_PAGE)
    expect(message_with(alice, "Message 1")).to_have_count(0)
    alice.get_by_role("button", name="Show older messages").click()
    expect(message_with(alice, "Message 1")).to_have_count(1)
    expect(alice.get_by_test_id("message")).to_have_count(MESSAGES_PAGE + 5)
    expect(alice.get_by_role("button", name="Show older messages")).to_be_hidden()


def test_a_group_on_a_phone_can_be_archived_renamed_and_left(parlor, open_client):
    _, alice_token = parlor.register("Alice")
    bob_id, _ = parlor.register("Bob")
    alice = open_client(alice_token, width=360, height=740)
    alice.get_by_text("New group").click()
    alice.get_by_label("Name", exact=True).fill("Design review")
    alice.get_by_label("Members (user ids, comma separated)").fill(bob_id)
    alice.get_by_role("button", name="Create group").click()
    expect(alice.locator("#room-name")).to_have_text("Design review")
    # At phone width the list gives way to the room.
    expect(alice.get_by_test_id("room-list")).to_be_hidden()
    expect(alice.get_by_role("button", name="Hide", exact=True)).to_be_hidden()

    # Archive is allowed from the mobile web layout (sent as X-Client: mobile_web).
    alice.get_by_role("button", name="Archive").click()
    expect(alice.get_by_role("button", name="Archive")).to_have_attribute("aria-pressed", "true")
    alice.prompt_answers.append("Design review, round 2")
    alice.get_by_role("button", name="Rename").click()
    expect(alice.locator("#room-name")).to_have_text("Design review, round 2")

    alice.get_by_role("button", name="Back").click()
    alice.get_by_role("button", name="Archived").click()
    group = room_item(alice).filter(has_text="Design review, round 2")
    expect(group).to_be_visible()
    group.get_by_role("button").click()
    alice.get_by_role("button", name="Leave").click()
    expect(alice.locator("#room")).to_be_hidden()
    expect(alice.get_by_test_id("room-list")).to_contain_text("No conversations here yet.")


def test_the_keyboard_sends_and_keeps_its_place_when_messages_arrive(parlor, open_client):
    alice_id, alice_token = parlor.register("Alice")
    bob_id, bob_token = parlor.register("Bob")
    alice = open_client(alice_token)
    start_direct(alice, bob_id, "First line")
    alice.get_by_test_id("composer").focus()
    alice.keyboard.type("Sent with Enter")
    alice.keyboard.press("Enter")
    expect(message_with(alice, "Sent with Enter")).to_be_visible()

    first = message_with(alice, "First line")
    first_id = first.get_attribute("data-message-id")
    first.get_by_test_id("message-edit").focus()
    room_id = parlor.command(bob_token, "message.send", {"to": alice_id, "body": "A reply arrives"})["room_id"]
    expect(message_with(alice, "A reply arrives")).to_be_visible()
    # The timeline was rebuilt; focus is still on the same control of the same message.
    focused = alice.evaluate(
        "[document.activeElement.closest('[data-message-id]')?.dataset.messageId, document.activeElement.dataset.testid]"
    )
    assert focused == [first_id, "message-edit"], (focused, room_id)
    alice.keyboard.press("Enter")
    expect(alice.get_by_test_id("composer")).to_be_focused()
    expect(alice.get_by_test_id("composer")).to_have_value("First line")
    alice.keyboard.press("Escape")
    expect(alice.locator("#composer-mode")).to_be_hidden()
    expect(alice.get_by_test_id("composer")).to_have_value("")


def test_the_main_screens_have_no_serious_accessibility_violations_at_phone_width(parlor, open_client):
    _, alice_token = parlor.register("Alice")
    bob_id, _ = parlor.register("Bob")
    alice = open_client(alice_token, width=360, height=740)
    axe = Axe()
    screens = {"room list": None}
    results = axe.run(alice)
    screens["room list"] = results
    start_direct(alice, bob_id, "Checking the layout")
    screens["conversation"] = axe.run(alice)
    # At 360 px nothing scrolls sideways.
    assert alice.evaluate("document.documentElement.scrollWidth") <= 360
    serious = {
        screen: [violation["id"] for violation in result.response["violations"] if violation["impact"] in ("serious", "critical")]
        for screen, result in screens.items()
    }
    assert serious == {screen: [] for screen in screens}, serious


def test_an_edit_after_the_hour_is_refused_with_the_sentence(parlor, open_client):
    # Moves the shared dev clock: the last test of the run.
    _, alice_token = parlor.register("Alice")
    bob_id, _ = parlor.register("Bob")
    alice = open_client(alice_token, controlled_clock=True)
    start_direct(alice, bob_id, "Meeting at ten")
    parlor.advance_clock(HOUR_AND_A_MINUTE_MS)

    # The browser's own clock has not moved, so the control is still there; the server refuses.
    message_with(alice, "Meeting at ten").get_by_test_id("message-edit").click()
    alice.get_by_test_id("composer").fill("Meeting at eleven")
    alice.get_by_test_id("send").click()
    expect(alice.get_by_test_id("error-banner")).to_have_text("Messages can be edited for one hour after sending.")
    expect(message_with(alice, "Meeting at ten")).to_be_visible()
    expect(message_with(alice, "Meeting at eleven")).to_have_count(0)

    # Once the browser's clock passes the hour too, the controls vanish.
    mine = message_with(alice, "Meeting at ten")
    expect(mine.get_by_test_id("message-delete")).to_be_visible()
    alice.clock.fast_forward(HOUR_AND_A_MINUTE_MS)
    expect(mine.get_by_test_id("message-edit")).to_have_count(0)
    expect(mine.get_by_test_id("message-delete")).to_have_count(0)
    expect(mine.get_by_test_id("message-reply")).to_be_visible()
