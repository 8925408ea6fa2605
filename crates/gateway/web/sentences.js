// The sentence a person reads for each error code the API can answer (protocol.md §1 and §3).
// A rejection is never shown as its raw code: an unknown code falls back to a general sentence.

const SENTENCES = {
  invalid_command: "That could not be sent: something in it is not accepted.",
  unauthorized: "Your sign-in is no longer valid. Paste a new token to continue.",
  forbidden: "You are not allowed to do that here.",
  not_found: "That could not be found. It may have been removed.",
  not_member: "You are not a member of this conversation.",
  not_author: "Only the person who wrote a message can change or delete it.",
  blocked: "You cannot send messages here: one of you has blocked the other.",
  contact_info_outside_contract:
    "Contact details (e-mail addresses, phone numbers, outside links) can only be shared once a contract is active.",
  daily_conversation_limit:
    "You have started as many new conversations as allowed today. Try again tomorrow.",
  edit_window_expired: "Messages can be edited for one hour after sending.",
  delete_window_expired: "Messages can be deleted for one hour after sending.",
  already_deleted: "This message was already deleted.",
  duplicate_message_id: "This message was already sent.",
  duplicate_command_id: "That request was already used for something else. Please try again.",
  cannot_add_to_direct: "People cannot be added to a direct conversation. Start a group instead.",
  cannot_hide_kind: "Only direct conversations and interviews can be hidden.",
  cannot_archive_kind: "Only group and contract rooms can be archived.",
  platform_not_supported: "This can only be done from the desktop or mobile web app.",
  body_too_long: "Messages can be at most 5,000 characters long.",
  empty_message: "Write something or attach a file before sending.",
  file_too_large: "Files can be at most 1 GiB.",
  call_in_progress: "A call is already going on in this room.",
  version_conflict: "Someone changed this at the same moment. Please try again.",
  internal: "Something went wrong on our side. Please try again.",
  unavailable: "Parlor is not reachable right now. Please try again in a moment.",
  projection_lagging: "Parlor is catching up. Please try again in a moment.",
  rate_limited: "You are going a little fast. Please wait a moment and try again.",
  quota_exceeded: "You have uploaded as much as allowed today.",
  insufficient_storage: "The server is out of space for uploads right now.",
  request_timeout: "The upload stalled. Please try again.",
  method_not_allowed: "That action is not available.",
  network: "Parlor could not be reached. Check your connection and try again.",
};

const FALLBACK = "Something went wrong. Please try again.";

/** The sentence for an error code; never the code itself. */
export function sentenceFor(code) {
  return Object.prototype.hasOwnProperty.call(SENTENCES, code) ? SENTENCES[code] : FALLBACK;
}
