// The reference web client's screens: sign-in, the room list and its views, a room's timeline
// with its composer, search, the files and links panel, and settings. State lives in `state`;
// the server is the only judge of the rules, and every refusal is shown as a sentence
// (sentences.js). Live changes arrive over the event stream (api.js followEvents).

import * as api from "./api.js";
import { sentenceFor } from "./sentences.js";

const EDIT_WINDOW_MS = 60 * 60 * 1000;
const WINDOW_CHECK_INTERVAL_MS = 10 * 1000;
const HEARTBEAT_INTERVAL_MS = 30 * 1000;
const ROOM_LIST_REFRESH_DELAY_MS = 150;
const MESSAGES_PAGE_LIMIT = 50;
const ATTACHMENTS_PER_MESSAGE_MAX = 10;
const URL_PATTERN = /https?:\/\/[^\s<>"]+/g;

const state = {
  me: null,
  view: "inbox",
  rooms: [],
  roomsCursor: null,
  room: null,
  messages: new Map(),
  messagesCursor: null,
  composerMode: null, // null | {kind: "reply"|"edit", message}
  pendingFiles: [],
  reportTarget: null,
  stream: null,
  timers: [],
  roomListRefresh: null,
  previewUrls: new Map(),
  editable: "",
};

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/**
 * Re-renders `container` with `render()`, keeping keyboard focus on the same control: lists are
 * rebuilt on every live change, and a keyboard user must not be thrown back to the page start.
 */
function keepingFocus(container, render) {
  const active = document.activeElement;
  let key = null;
  if (active && container.contains(active)) {
    const owner = active.closest("[data-message-id], [data-room-id]");
    if (owner) {
      key = {
        id: owner.dataset.messageId || owner.dataset.roomId,
        control: active.dataset.testid || active.textContent,
      };
    }
  }
  render();
  if (!key) return;
  const owner = container.querySelector(`[data-message-id="${key.id}"], [data-room-id="${key.id}"]`);
  if (!owner) return;
  const again = [...owner.querySelectorAll("button, a")].find(
    (candidate) => (candidate.dataset.testid || candidate.textContent) === key.control,
  );
  if (again) again.focus();
}

// ---- errors ----------------------------------------------------------------------------

function showError(error) {
  const code = error instanceof api.ApiFailure ? error.code : "network";
  const banner = $("error-banner");
  banner.textContent = sentenceFor(code);
  banner.dataset.code = code;
  banner.hidden = false;
  if (code === "unauthorized") signOut(sentenceFor(code));
}

function clearError() {
  $("error-banner").hidden = true;
  $("error-banner").textContent = "";
}

/** Runs an action; a refusal becomes the banner's sentence. Answers whether it succeeded. */
async function attempt(action) {
  try {
    await action();
    clearError();
    return true;
  } catch (error) {
    showError(error);
    return false;
  }
}

// ---- sign-in ---------------------------------------------------------------------------

function tokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    // Take it out of the address bar and history at once.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return token;
}

async function signIn(token) {
  const subject = api.tokenSubject(token);
  if (!subject) {
    showError(new api.ApiFailure("unauthorized", "", 401, null));
    return;
  }
  api.storeToken(token);
  state.me = subject;
  let position = null;
  try {
    position = await loadRooms();
  } catch (error) {
    api.forgetToken();
    state.me = null;
    showError(error);
    return;
  }
  clearError();
  $("sign-in-screen").hidden = true;
  $("app").hidden = false;
  $("search-form").hidden = false;
  $("account").hidden = false;
  $("me").textContent = subject;
  startLive(position);
}

function signOut(reason) {
  api.forgetToken();
  if (state.stream) state.stream.abort();
  state.stream = null;
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  state.me = null;
  state.room = null;
  $("app").hidden = true;
  $("search-form").hidden = true;
  $("account").hidden = true;
  $("sign-in-screen").hidden = false;
  $("token-input").value = "";
  if (!reason) clearError();
}

// ---- live --------------------------------------------------------------------------------

/** Follows the event stream from `position`, the room list's read position. */
function startLive(position) {
  const controller = new AbortController();
  state.stream = controller;
  api.followEvents({
    signal: controller.signal,
    startAfter: position,
    onEvent: handleEvent,
    onState: (connection) => {
      $("connection").textContent = connection === "live" ? "Live" : "Reconnecting…";
      $("connection").dataset.state = connection;
    },
    onFailure: showError,
  });
  api.heartbeat();
  state.timers.push(setInterval(api.heartbeat, HEARTBEAT_INTERVAL_MS));
  state.timers.push(setInterval(closeEditWindows, WINDOW_CHECK_INTERVAL_MS));
}

function handleEvent(type, data) {
  if (type === "room") {
    if (state.room && state.room.room_id === data.room_id) {
      state.room = data;
      renderRoomHead();
      // A message that arrives while the room is open is read (the Room follows its Message).
      markRead();
    }
    scheduleRoomListRefresh();
  } else if (type === "message" || type === "message_deleted") {
    if (state.room && state.room.room_id === data.room_id) {
      state.messages.set(data.message_id, data);
      renderTimeline();
      markRead();
    }
  } else if (type === "room_removed") {
    if (state.room && state.room.room_id === data.room_id) closeRoom();
    scheduleRoomListRefresh();
  }
}

/** Which rooms a view holds is the server's to say: the list is read again, not patched. */
function scheduleRoomListRefresh() {
  clearTimeout(state.roomListRefresh);
  state.roomListRefresh = setTimeout(() => {
    loadRooms().catch(showError);
  }, ROOM_LIST_REFRESH_DELAY_MS);
}

// ---- rooms ---------------------------------------------------------------------------------

/** Reads the room list of the current view; answers the position it was read at. */
async function loadRooms(append = false) {
  const { body: page, position } = await api.readAt("/v1/rooms", {
    view: state.view,
    cursor: append ? state.roomsCursor : null,
  });
  state.rooms = append ? state.rooms.concat(page.rooms) : page.rooms;
  state.roomsCursor = page.next_cursor;
  renderRooms();
  return position;
}

function renderRooms() {
  keepingFocus($("room-list"), renderRoomItems);
}

function renderRoomItems() {
  const list = $("room-list");
  list.replaceChildren();
  if (state.rooms.length === 0) {
    list.append(element("li", { class: "empty", text: "No conversations here yet." }));
  }
  for (const room of state.rooms) {
    const others = room.members.filter((member) => member.user_id !== state.me);
    const online = room.kind === "direct" && others.some((member) => member.online);
    const preview = room.last_message
      ? room.last_message.deleted
        ? "This message was deleted"
        : room.last_message.preview
      : "";
    const button = element(
      "button",
      {
        type: "button",
        class: "room-button",
        "aria-current": state.room && state.room.room_id === room.room_id ? "true" : null,
        onclick: () => openRoom(room.room_id).catch(showError),
      },
      online ? element("span", { class: "dot online", role: "img", "aria-label": "online" }) : element("span", { class: "dot", "aria-hidden": "true" }),
      element("span", { class: "room-name", text: room.name }),
      room.unread > 0
        ? element("span", {
            class: "badge",
            "data-testid": "unread-badge",
            "aria-label": `${room.unread} unread`,
            text: String(room.unread),
          })
        : null,
      element("span", { class: "room-preview", text: preview }),
    );
    list.append(
      element("li", { "data-testid": "room-item", "data-room-id": room.room_id }, button),
    );
  }
  $("more-rooms").hidden = !state.roomsCursor;
}

/** Opens a room; `minPosition` (a command's reply position) makes the reads see that command. */
async function openRoom(roomId, minPosition = null) {
  const room = await api.read(`/v1/rooms/${roomId}`, { min_position: minPosition });
  state.room = room;
  state.messages = new Map();
  state.messagesCursor = null;
  setComposerMode(null);
  state.pendingFiles = [];
  renderPendingFiles();
  closeSearch();
  notify("");
  $("room").hidden = false;
  $("app").classList.add("room-open");
  renderRoomHead();
  await loadMessages(false, minPosition);
  renderRooms();
  markRead();
  if (!$("files-panel").hidden) loadFiles().catch(showError);
  $("composer").focus();
}

function closeRoom() {
  state.room = null;
  state.messages = new Map();
  $("room").hidden = true;
  $("files-panel").hidden = true;
  $("app").classList.remove("room-open");
  renderRooms();
}

async function loadMessages(older, minPosition = null) {
  const page = await api.read(`/v1/rooms/${state.room.room_id}/messages`, {
    min_position: minPosition,
    limit: MESSAGES_PAGE_LIMIT,
    cursor: older ? state.messagesCursor : null,
  });
  for (const message of page.messages) {
    // A live event may already hold a newer version of this message.
    if (!state.messages.has(message.message_id)) state.messages.set(message.message_id, message);
  }
  state.messagesCursor = page.next_cursor;
  renderTimeline();
}

function markRead() {
  if (!state.room || state.room.unread === 0 || document.hidden) return;
  const newest = sortedMessages().at(-1);
  if (!newest) return;
  api.command("room.mark_read", { room_id: state.room.room_id, message_id: newest.message_id })
    .catch(() => {
      // The badge simply stays; nothing the person must act on.
    });
}

function renderRoomHead() {
  const room = state.room;
  if (!room) return;
  $("room-name").textContent = room.name;
  const others = room.members.filter((member) => member.user_id !== state.me);
  $("room-members").replaceChildren(
    ...room.members.map((member) =>
      element(
        "span",
        { class: "member" },
        element("span", {
          class: member.online ? "dot online" : "dot",
          role: "img",
          "aria-label": member.online ? "online" : "offline",
        }),
        member.display_name + (member.user_id === state.me ? " (you)" : ""),
      ),
    ),
  );
  $("away-banners").replaceChildren(
    ...others
      .filter((member) => member.away)
      .map((member) =>
        element("p", {
          class: "away-banner",
          text: `${member.display_name} is away until ${formatTime(member.away.until)}: ${member.away.message}`,
        }),
      ),
  );
  const hideable = room.kind === "direct" || room.kind === "interview";
  const archivable = room.kind === "group" || room.kind === "contract";
  setPressed($("favorite"), room.favorite);
  setPressed($("hide"), room.hidden);
  setPressed($("archive"), room.archived);
  $("hide").hidden = !hideable;
  $("archive").hidden = !archivable;
  $("block-user").hidden = room.kind !== "direct";
  $("unblock-user").hidden = room.kind !== "direct";
  $("rename-room").hidden = room.kind !== "group";
  $("leave-room").hidden = room.kind !== "group";
  $("add-member").hidden = room.kind === "direct";
}

function setPressed(button, pressed) {
  button.setAttribute("aria-pressed", pressed ? "true" : "false");
}

function sortedMessages() {
  return [...state.messages.values()].sort((a, b) =>
    a.sent_at === b.sent_at ? (a.message_id < b.message_id ? -1 : 1) : a.sent_at < b.sent_at ? -1 : 1,
  );
}

function withinWindow(message) {
  return Date.now() - Date.parse(message.sent_at) < EDIT_WINDOW_MS;
}

/** The ids of the messages whose edit and delete controls show now, as one string. */
function editableIds() {
  return sortedMessages()
    .filter((message) => message.author === state.me && !message.deleted && withinWindow(message))
    .map((message) => message.message_id)
    .join(",");
}

/** Every few seconds: the controls of a message vanish once its hour is over. */
function closeEditWindows() {
  if (state.room && editableIds() !== state.editable) renderTimeline();
}

function renderTimeline() {
  if (!state.room) return;
  const box = $("timeline-box");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  state.editable = editableIds();
  keepingFocus($("timeline"), () => $("timeline").replaceChildren(...sortedMessages().map(renderMessage)));
  $("older").hidden = !state.messagesCursor;
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function renderMessage(message) {
  const mine = message.author === state.me;
  const item = element("li", {
    class: `message${mine ? " mine" : ""}${message.deleted ? " deleted" : ""}`,
    "data-testid": "message",
    "data-message-id": message.message_id,
  });
  const author = authorName(message.author);
  item.append(
    element(
      "div",
      { class: "message-meta" },
      element("span", { class: "author", text: message.kind === "auto_reply" ? `${author} (automatic reply)` : author }),
      element("time", { datetime: message.sent_at, text: formatTime(message.sent_at) }),
      message.edited_at && !message.deleted ? element("span", { class: "edited", text: "edited" }) : null,
    ),
  );
  if (message.reply_to) {
    item.append(
      element("blockquote", {
        class: "reply-to",
        text: message.reply_to.deleted
          ? "Replying to a message that was removed"
          : `Replying to ${authorName(message.reply_to.author)}: ${message.reply_to.preview}`,
      }),
    );
  }
  if (message.deleted) {
    item.append(element("p", { class: "message-body tombstone", "data-testid": "message-body", text: "This message was deleted" }));
    return item;
  }
  if (message.kind === "call" && message.call) {
    const call = message.call;
    const text = call.ended_at
      ? `${call.media === "video" ? "Video" : "Audio"} call, ${Math.round(call.duration_ms / 1000)} s`
      : `${call.media === "video" ? "Video" : "Audio"} call going on`;
    item.append(element("p", { class: "message-body call", "data-testid": "message-body", text }));
    if (!call.ended_at) {
      item.append(
        element("button", {
          type: "button",
          text: "End call",
          onclick: () => attempt(() => api.command("call.end", { room_id: message.room_id, call_id: call.call_id })),
        }),
      );
    }
    return item;
  }
  item.append(element("p", { class: "message-body", "data-testid": "message-body", text: message.body || "" }));
  if (message.attachments.length > 0) item.append(renderAttachments(message.attachments));
  const actions = element("div", { class: "message-actions", role: "group", "aria-label": "Message actions" });
  actions.append(
    element("button", {
      type: "button",
      "data-testid": "message-reply",
      text: "Reply",
      onclick: () => setComposerMode({ kind: "reply", message }),
    }),
  );
  if (mine && message.kind === "text" && withinWindow(message)) {
    actions.append(
      element("button", {
        type: "button",
        "data-testid": "message-edit",
        text: "Edit",
        onclick: () => setComposerMode({ kind: "edit", message }),
      }),
      element("button", {
        type: "button",
        "data-testid": "message-delete",
        text: "Delete",
        onclick: () => deleteMessage(message),
      }),
    );
  }
  if (!mine && message.kind === "text") {
    actions.append(
      element("button", {
        type: "button",
        "data-testid": "report-message",
        text: "Report",
        onclick: () => openReport(message),
      }),
    );
  }
  item.append(actions);
  return item;
}

function renderAttachments(attachments) {
  const list = element("ul", { class: "attachments" });
  for (const attachment of attachments) {
    if (attachment.type === "link") {
      list.append(
        element(
          "li",
          {},
          element("a", { href: attachment.url, rel: "noopener noreferrer nofollow", target: "_blank", text: attachment.url }),
          attachment.provider ? element("span", { class: "provider", text: ` (${attachment.provider})` }) : null,
        ),
      );
    } else {
      const item = element("li", { class: "file" });
      if (attachment.has_preview) item.append(previewImage(attachment.file_id, attachment.name));
      item.append(
        element("button", {
          type: "button",
          class: "download",
          text: `Download ${attachment.name} (${formatSize(attachment.size)})`,
          onclick: () => download(attachment.file_id, attachment.name),
        }),
      );
      list.append(item);
    }
  }
  return list;
}

/** Previews need the token, so they are fetched and shown from a `blob:` URL (kept per file). */
function previewImage(fileId, name) {
  const image = element("img", { class: "preview", alt: `Preview of ${name}`, "data-file-id": fileId });
  let url = state.previewUrls.get(fileId);
  if (!url) {
    url = api.blobUrl(`/v1/files/${fileId}/preview`);
    state.previewUrls.set(fileId, url);
  }
  url.then(
    (src) => {
      image.src = src;
    },
    () => {
      state.previewUrls.delete(fileId);
      image.alt = `No preview of ${name}`;
    },
  );
  return image;
}

async function download(fileId, name) {
  await attempt(async () => {
    const url = await api.blobUrl(`/v1/files/${fileId}`);
    const link = element("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60 * 1000);
  });
}

function authorName(userId) {
  if (userId === state.me) return "You";
  const member = state.room && state.room.members.find((candidate) => candidate.user_id === userId);
  return member ? member.display_name : userId;
}

function formatTime(timestamp) {
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// ---- composing -----------------------------------------------------------------------------

function setComposerMode(mode) {
  state.composerMode = mode;
  const bar = $("composer-mode");
  if (!mode) {
    bar.hidden = true;
    $("send").textContent = "Send";
    return;
  }
  bar.hidden = false;
  if (mode.kind === "edit") {
    $("composer-mode-text").textContent = "Editing your message";
    $("composer").value = mode.message.body || "";
    $("send").textContent = "Save";
  } else {
    $("composer-mode-text").textContent = `Replying to ${authorName(mode.message.author)}`;
    $("send").textContent = "Send";
  }
  $("composer").focus();
}

async function submitComposer() {
  if (!state.room) return;
  const body = $("composer").value;
  const mode = state.composerMode;
  const roomId = state.room.room_id;
  const succeeded = await attempt(async () => {
    if (mode && mode.kind === "edit") {
      await api.command("message.edit", { room_id: roomId, message_id: mode.message.message_id, body });
      return;
    }
    // A sentence's closing punctuation is not part of the link it ends with.
    const urls = (body.match(URL_PATTERN) || []).map((url) => url.replace(/[.,;:!?)\]'"]+$/, ""));
    const links = [...new Set(urls)].map((url) => ({ url }));
    const files = state.pendingFiles.map((file) => ({ file_id: file.file_id }));
    const attachments = files.concat(links).slice(0, ATTACHMENTS_PER_MESSAGE_MAX);
    const data = { room_id: roomId, body };
    if (attachments.length > 0) data.attachments = attachments;
    if (mode && mode.kind === "reply") data.reply_to = mode.message.message_id;
    await api.command("message.send", data);
  });
  if (succeeded) {
    $("composer").value = "";
    state.pendingFiles = [];
    renderPendingFiles();
    setComposerMode(null);
  }
}

async function deleteMessage(message) {
  if (!confirm("Delete this message for everyone?")) return;
  await attempt(() => api.command("message.delete", { room_id: message.room_id, message_id: message.message_id }));
}

async function uploadFiles(files) {
  for (const file of files) {
    await attempt(async () => {
      const stored = await api.upload(file);
      state.pendingFiles.push(stored);
      renderPendingFiles();
    });
  }
  $("upload-input").value = "";
}

function renderPendingFiles() {
  $("pending-files").replaceChildren(
    ...state.pendingFiles.map((file, index) =>
      element(
        "li",
        {},
        `${file.name} (${formatSize(file.size)}) `,
        element("button", {
          type: "button",
          "aria-label": `Remove ${file.name}`,
          text: "Remove",
          onclick: () => {
            state.pendingFiles.splice(index, 1);
            renderPendingFiles();
          },
        }),
      ),
    ),
  );
}

// ---- search and files ------------------------------------------------------------------------

async function search(query) {
  const results = await api.read("/v1/search", { q: query });
  const list = $("search-list");
  list.replaceChildren();
  for (const room of results.rooms) {
    list.append(
      element(
        "li",
        { "data-testid": "search-result", class: "search-room" },
        element("button", { type: "button", text: `Room: ${room.name}`, onclick: () => openRoom(room.room_id).catch(showError) }),
      ),
    );
  }
  for (const hit of results.messages) {
    const button = element("button", { type: "button", onclick: () => openRoom(hit.room_id).catch(showError) });
    button.append(element("span", { class: "author", text: `${hit.author}: ` }), highlighted(hit.snippet));
    list.append(element("li", { "data-testid": "search-result" }, button));
  }
  if (list.children.length === 0) list.append(element("li", { class: "empty", text: "Nothing found." }));
  $("search-results").hidden = false;
  $("room").hidden = true;
}

/** The snippet marks hits with `<mark>`; everything else in it is text, never markup. */
function highlighted(snippet) {
  const span = element("span", { class: "snippet" });
  const parts = snippet.split(/(<mark>|<\/mark>)/);
  let marked = false;
  for (const part of parts) {
    if (part === "<mark>") marked = true;
    else if (part === "</mark>") marked = false;
    else if (part) span.append(marked ? element("mark", { text: part }) : document.createTextNode(part));
  }
  return span;
}

function closeSearch() {
  $("search-results").hidden = true;
  $("room").hidden = !state.room;
}

async function loadFiles() {
  if (!state.room) return;
  const page = await api.read(`/v1/rooms/${state.room.room_id}/files`, { q: $("files-query").value.trim() });
  const list = $("files-list");
  list.replaceChildren();
  for (const item of page.items) {
    const entry = element("li", { "data-testid": "file-item", class: "file-item" });
    if (item.type === "file") {
      if (item.content_type && item.content_type.startsWith("image/")) {
        entry.append(previewImage(item.file_id, item.name));
      }
      entry.append(
        element("button", {
          type: "button",
          text: `${item.name} (${formatSize(item.size)})`,
          onclick: () => download(item.file_id, item.name),
        }),
      );
    } else {
      entry.append(element("a", { href: item.url, rel: "noopener noreferrer nofollow", target: "_blank", text: item.name || item.url }));
      if (item.provider) entry.append(` (${item.provider})`);
    }
    entry.append(element("span", { class: "file-meta", text: ` ${authorName(item.author)}, ${formatTime(item.sent_at)}` }));
    list.append(entry);
  }
  if (page.items.length === 0) list.append(element("li", { class: "empty", text: "No files or links." }));
}

// ---- room and user actions ---------------------------------------------------------------------

function otherMember() {
  return state.room && state.room.members.find((member) => member.user_id !== state.me);
}

function roomAction(type, extra = {}) {
  return attempt(() => api.command(type, { room_id: state.room.room_id, ...extra }));
}

function openReport(message) {
  state.reportTarget = message;
  $("report-details").value = "";
  $("report").showModal();
}

function openSettings() {
  $("settings-status").textContent = "";
  $("settings").showModal();
}

/** Applies one setting; the dialog's status line says what was saved. */
async function saveSetting(type, data, saved) {
  if (await attempt(() => api.command(type, data))) $("settings-status").textContent = saved;
}

function setAway() {
  const message = $("away-message").value.trim();
  const from = $("away-from").value ? new Date($("away-from").value) : new Date();
  const until = $("away-until").value ? new Date($("away-until").value) : null;
  if (!message || !until || Number.isNaN(from.getTime()) || Number.isNaN(until.getTime())) {
    $("settings-status").textContent = "Write a message and choose until when you are away.";
    return;
  }
  saveSetting(
    "user.set_out_of_office",
    { message, from: from.toISOString(), until: until.toISOString() },
    `Out of office until ${until.toLocaleString()}.`,
  );
}

/** A short confirmation that is not an error (block, unblock). */
function notify(text) {
  $("notice").textContent = text;
}

// ---- wiring ----------------------------------------------------------------------------------

function wire() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token-input").value.trim());
  });
  $("sign-out").addEventListener("click", () => signOut());
  for (const button of document.querySelectorAll("[data-view]")) {
    button.addEventListener("click", () => {
      state.view = button.dataset.view;
      for (const other of document.querySelectorAll("[data-view]")) setPressed(other, other === button);
      loadRooms().catch(showError);
    });
  }
  $("more-rooms").addEventListener("click", () => loadRooms(true).catch(showError));
  $("new-direct-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let result = null;
    const sent = await attempt(async () => {
      result = await api.command("message.send", {
        to: $("new-direct-to").value.trim(),
        body: $("new-direct-body").value,
      });
    });
    if (sent) {
      $("new-direct-to").value = "";
      $("new-direct-body").value = "";
      await openRoom(result.result.room_id, result.position).catch(showError);
    }
  });
  $("new-group-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let result = null;
    const members = $("new-group-members").value.split(",").map((member) => member.trim()).filter(Boolean);
    const created = await attempt(async () => {
      result = await api.command("room.create", { name: $("new-group-name").value, members });
    });
    if (created) {
      $("new-group-form").reset();
      await openRoom(result.result.room_id, result.position).catch(showError);
    }
  });
  $("composer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitComposer();
  });
  $("composer").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      submitComposer();
    } else if (event.key === "Escape" && state.composerMode) {
      $("composer-cancel").click();
    }
  });
  $("composer-cancel").addEventListener("click", () => {
    if (state.composerMode && state.composerMode.kind === "edit") $("composer").value = "";
    setComposerMode(null);
  });
  $("upload-input").addEventListener("change", (event) => uploadFiles([...event.target.files]));
  $("older").addEventListener("click", () => loadMessages(true).catch(showError));
  $("back").addEventListener("click", closeRoom);
  $("favorite").addEventListener("click", () => roomAction("room.favorite", { on: !state.room.favorite }));
  $("hide").addEventListener("click", () => roomAction("room.hide", { on: !state.room.hidden }));
  $("archive").addEventListener("click", () => roomAction("room.archive", { on: !state.room.archived }));
  $("start-call").addEventListener("click", () => roomAction("call.start", { media: "audio" }));
  $("rename-room").addEventListener("click", () => {
    const name = prompt("New name of the room", state.room.name);
    if (name) roomAction("room.rename", { name });
  });
  $("add-member").addEventListener("click", () => {
    const userId = prompt("User id of the person to add");
    if (userId) roomAction("room.add_member", { user_id: userId.trim() });
  });
  $("leave-room").addEventListener("click", () => {
    if (confirm("Leave this room?")) roomAction("room.leave");
  });
  $("block-user").addEventListener("click", async () => {
    const other = otherMember();
    if (other && (await attempt(() => api.command("user.block", { user_id: other.user_id })))) {
      notify(`You blocked ${other.display_name}: neither of you can send messages here until you unblock.`);
    }
  });
  $("unblock-user").addEventListener("click", async () => {
    const other = otherMember();
    if (other && (await attempt(() => api.command("user.unblock", { user_id: other.user_id })))) {
      notify(`You unblocked ${other.display_name}.`);
    }
  });
  $("toggle-files").addEventListener("click", () => {
    const panel = $("files-panel");
    panel.hidden = !panel.hidden;
    $("toggle-files").setAttribute("aria-expanded", panel.hidden ? "false" : "true");
    if (!panel.hidden) loadFiles().catch(showError);
  });
  $("close-files").addEventListener("click", () => {
    $("files-panel").hidden = true;
    $("toggle-files").setAttribute("aria-expanded", "false");
  });
  $("files-query").addEventListener("input", () => loadFiles().catch(showError));
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("search-input").value.trim();
    if (query) search(query).catch(showError);
  });
  $("close-search").addEventListener("click", closeSearch);
  $("open-settings").addEventListener("click", openSettings);
  $("appear-online").addEventListener("click", () =>
    saveSetting("user.set_online_visibility", { visible: true }, "Others see you online while Parlor is open."),
  );
  $("appear-offline").addEventListener("click", () =>
    saveSetting("user.set_online_visibility", { visible: false }, "Others no longer see you online."),
  );
  $("notify-frequency").addEventListener("change", () => {
    const choice = $("notify-frequency");
    saveSetting(
      "user.set_notifications",
      { frequency: choice.value },
      `Notifications: ${choice.options[choice.selectedIndex].text.toLowerCase()}.`,
    );
  });
  $("set-away").addEventListener("click", setAway);
  $("clear-away").addEventListener("click", () =>
    saveSetting("user.clear_out_of_office", {}, "You are no longer out of office."),
  );
  $("send-report").addEventListener("click", async () => {
    const message = state.reportTarget;
    const data = { room_id: message.room_id, message_id: message.message_id, reason: $("report-reason").value };
    const details = $("report-details").value.trim();
    if (details) data.details = details;
    if (await attempt(() => api.command("message.report", data))) $("report").close();
  });
  document.addEventListener("visibilitychange", markRead);
}

wire();
const token = tokenFromFragment() || api.storedToken();
if (token) signIn(token);
