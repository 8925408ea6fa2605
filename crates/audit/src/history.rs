//! `audit room`: a room's history as it stood at a moment — members, every message with its
//! full edit history, deletions with the original content, reports and calls — folded from the
//! room's stream, which holds everything that happens in or to a room.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use domain::{Attachment, Event, MembershipChange, RoomId, Timestamp};
use eventlog::EventLog;
use serde::Serialize;

use crate::{decode, AuditError, SCAN_PAGE_EVENTS_MAX};

/// A room as it stood at `as_of`.
#[derive(Debug, Clone, Serialize)]
pub struct RoomHistory {
    /// The room.
    pub room_id: String,
    /// Its kind at that moment.
    pub kind: String,
    /// Its name at that moment (empty for direct rooms).
    pub name: String,
    /// The moment.
    pub as_of: Timestamp,
    /// When the room came to be.
    pub created_at: Timestamp,
    /// Who made it (a user, or a service for interview and contract rooms).
    pub created_by: String,
    /// Everyone who was ever a member, with when they joined and left.
    pub members: Vec<MemberEntry>,
    /// The contract, if the room is one's.
    pub contract: Option<ContractEntry>,
    /// Every message, oldest first, deleted ones included.
    pub messages: Vec<MessageEntry>,
    /// Renames, oldest first.
    pub renames: Vec<RenameEntry>,
    /// Reports of messages of the room.
    pub reports: Vec<ReportEntry>,
    /// Calls.
    pub calls: Vec<CallEntry>,
}

/// A member and their time in the room.
#[derive(Debug, Clone, Serialize)]
pub struct MemberEntry {
    /// The user.
    pub user_id: String,
    /// When they joined.
    pub joined_at: Timestamp,
    /// When they left, if they did.
    pub left_at: Option<Timestamp>,
}

/// The room's contract.
#[derive(Debug, Clone, Serialize)]
pub struct ContractEntry {
    /// The contract.
    pub contract_id: String,
    /// Whether it was active at that moment.
    pub active: bool,
}

/// A rename.
#[derive(Debug, Clone, Serialize)]
pub struct RenameEntry {
    /// The new name.
    pub name: String,
    /// Who.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// One body a message had, and who gave it when.
#[derive(Debug, Clone, Serialize)]
pub struct MessageVersion {
    /// The body.
    pub body: String,
    /// Who wrote it.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// A message with everything that happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageEntry {
    /// The message.
    pub message_id: String,
    /// Its author.
    pub author: String,
    /// `text` or `auto_reply`.
    pub kind: String,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// The message it answers.
    pub reply_to: Option<String>,
    /// Files and links.
    pub attachments: Vec<Attachment>,
    /// Every body it had, the original first.
    pub versions: Vec<MessageVersion>,
    /// When and by whom it was deleted.
    pub deleted: Option<MessageVersion>,
}

/// A report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportEntry {
    /// The report.
    pub report_id: String,
    /// The message reported.
    pub message_id: String,
    /// Who reported.
    pub reporter: String,
    /// Why.
    pub reason: String,
    /// Free text.
    pub details: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// A call.
#[derive(Debug, Clone, Serialize)]
pub struct CallEntry {
    /// The call.
    pub call_id: String,
    /// Audio or video.
    pub media: String,
    /// Who started it.
    pub started_by: String,
    /// When.
    pub started_at: Timestamp,
    /// When it ended, if it had by then.
    pub ended_at: Option<Timestamp>,
    /// Its length, once ended.
    pub duration_ms: Option<i64>,
}

fn text<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The room's history up to and including `as_of` (everything, when none).
pub fn room_history(
    log: &EventLog,
    room_id: RoomId,
    as_of: Option<Timestamp>,
) -> Result<RoomHistory, AuditError> {
    let stream = format!("room-{room_id}");
    let mut history: Option<RoomHistory> = None;
    let mut messages: BTreeMap<String, usize> = BTreeMap::new();
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    let mut members: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_time = Timestamp::from_millis(0);
    let mut version = 1;
    'pages: loop {
        let records = log.read_stream(&stream, version, SCAN_PAGE_EVENTS_MAX)?;
        if records.is_empty() {
            break;
        }
        for record in &records {
            version = record.version + 1;
            let stored = decode(record)?;
            if as_of.is_some_and(|limit| stored.recorded_at > limit) {
                break 'pages;
            }
            last_time = stored.recorded_at;
            let at = stored.recorded_at;
            let actor = stored.actor.clone();
            let join = |h: &mut RoomHistory, m: &mut BTreeMap<String, usize>, user: String| {
                if let Some(&index) = m.get(&user) {
                    h.members[index].left_at = None;
                } else {
                    m.insert(user.clone(), h.members.len());
                    h.members.push(MemberEntry {
                        user_id: user,
                        joined_at: at,
                        left_at: None,
                    });
                }
            };
            let fresh = |kind: &str, name: String| RoomHistory {
                room_id: room_id.to_string(),
                kind: kind.to_owned(),
                name,
                as_of: at,
                created_at: at,
                created_by: actor.clone(),
                members: Vec::new(),
                contract: None,
                messages: Vec::new(),
                renames: Vec::new(),
                reports: Vec::new(),
                calls: Vec::new(),
            };
            // Who joins or leaves: the domain's one definition, applied once the room's history
            // exists (the event may be what creates it).
            let membership = stored.event.membership_change().map(|change| match change {
                MembershipChange::Joined { users, .. } => (
                    users.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    true,
                ),
                MembershipChange::Left { user, .. } => (vec![user.to_string()], false),
            });
            match stored.event {
                Event::DirectRoomOpened { .. } => {
                    history = Some(fresh("direct", String::new()));
                }
                Event::GroupRoomCreated { name, .. } => {
                    history = Some(fresh("group", name));
                }
                Event::InterviewRoomOpened { title, .. } => {
                    history = Some(fresh("interview", title));
                }
                Event::ContractStarted {
                    contract_id,
                    title,
                    room_created,
                    ..
                } => {
                    let h = if room_created || history.is_none() {
                        history.insert(fresh("contract", title.clone()))
                    } else {
                        match history.as_mut() {
                            Some(h) => h,
                            None => continue,
                        }
                    };
                    h.kind = "contract".into();
                    h.name = title;
                    h.contract = Some(ContractEntry {
                        contract_id: contract_id.to_string(),
                        active: true,
                    });
                }
                other => {
                    let Some(h) = history.as_mut() else { continue };
                    match other {
                        Event::ContractEnded { .. } => {
                            if let Some(contract) = h.contract.as_mut() {
                                contract.active = false;
                            }
                        }
                        Event::RoomRenamed {
                            name, renamed_by, ..
                        } => {
                            h.name = name.clone();
                            h.renames.push(RenameEntry {
                                name,
                                by: renamed_by.to_string(),
                                at,
                            });
                        }
                        Event::MessageSent {
                            message_id,
                            author,
                            body,
                            reply_to,
                            attachments,
                            sent_at,
                            ..
                        } => {
                            messages.insert(message_id.to_string(), h.messages.len());
                            h.messages.push(MessageEntry {
                                message_id: message_id.to_string(),
                                author: author.to_string(),
                                kind: "text".into(),
                                sent_at,
                                reply_to: reply_to.map(|id| id.to_string()),
                                attachments,
                                versions: vec![MessageVersion {
                                    body,
                                    by: author.to_string(),
                                    at: sent_at,
                                }],
                                deleted: None,
                            });
                        }
                        Event::AutoReplySent {
                            message_id,
                            author,
                            body,
                            in_reply_to,
                            sent_at,
                            ..
                        } => {
                            messages.insert(message_id.to_string(), h.messages.len());
                            h.messages.push(MessageEntry {
                                message_id: message_id.to_string(),
                                author: author.to_string(),
                                kind: "auto_reply".into(),
                                sent_at,
                                reply_to: Some(in_reply_to.to_string()),
                                attachments: Vec::new(),
                                versions: vec![MessageVersion {
                                    body,
                                    by: author.to_string(),
                                    at: sent_at,
                                }],
                                deleted: None,
                            });
                        }
                        Event::MessageEdited {
                            message_id,
                            body,
                            edited_at,
                            ..
                        } => {
                            if let Some(&index) = messages.get(&message_id.to_string()) {
                                h.messages[index].versions.push(MessageVersion {
                                    body,
                                    by: actor.clone(),
                                    at: edited_at,
                                });
                            }
                        }
                        Event::MessageDeleted {
                            message_id,
                            deleted_at,
                            ..
                        } => {
                            if let Some(&index) = messages.get(&message_id.to_string()) {
                                let original = h.messages[index]
                                    .versions
                                    .last()
                                    .map(|v| v.body.clone())
                                    .unwrap_or_default();
                                h.messages[index].deleted = Some(MessageVersion {
                                    body: original,
                                    by: actor.clone(),
                                    at: deleted_at,
                                });
                            }
                        }
                        Event::MessageReported {
                            report_id,
                            message_id,
                            reporter,
                            reason,
                            details,
                            reported_at,
                            ..
                        } => {
                            h.reports.push(ReportEntry {
                                report_id: report_id.to_string(),
                                message_id: message_id.to_string(),
                                reporter: reporter.to_string(),
                                reason: text(&reason),
                                details,
                                at: reported_at,
                            });
                        }
                        Event::CallStarted {
                            call_id,
                            media,
                            started_by,
                            started_at,
                            ..
                        } => {
                            calls.insert(call_id.to_string(), h.calls.len());
                            h.calls.push(CallEntry {
                                call_id: call_id.to_string(),
                                media: text(&media),
                                started_by: started_by.to_string(),
                                started_at,
                                ended_at: None,
                                duration_ms: None,
                            });
                        }
                        Event::CallEnded {
                            call_id,
                            ended_at,
                            duration_ms,
                            ..
                        } => {
                            if let Some(&index) = calls.get(&call_id.to_string()) {
                                h.calls[index].ended_at = Some(ended_at);
                                h.calls[index].duration_ms = Some(duration_ms);
                            }
                        }
                        // Per-member views (favorite, hide, archive, read markers) are private
                        // preferences, not the room's history.
                        _ => {}
                    }
                }
            }
            if let (Some(h), Some((users, joined))) = (history.as_mut(), membership) {
                for user in users {
                    if joined {
                        join(h, &mut members, user);
                    } else if let Some(&index) = members.get(&user) {
                        h.members[index].left_at = Some(at);
                    }
                }
            }
        }
    }
    let mut history = history.ok_or(AuditError::NoSuchRoom)?;
    history.as_of = as_of.unwrap_or(last_time);
    Ok(history)
}

impl RoomHistory {
    /// The history as readable text: one block per section, one line per fact, times in
    /// RFC 3339 UTC.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let name = if self.name.is_empty() {
            String::new()
        } else {
            format!(" \"{}\"", self.name)
        };
        let _ = writeln!(
            out,
            "room {} ({}){name} as of {}",
            self.room_id, self.kind, self.as_of
        );
        let _ = writeln!(out, "created {} by {}", self.created_at, self.created_by);
        if let Some(contract) = &self.contract {
            let state = if contract.active { "active" } else { "ended" };
            let _ = writeln!(out, "contract {} ({state})", contract.contract_id);
        }
        for rename in &self.renames {
            let _ = writeln!(
                out,
                "renamed {} by {} to \"{}\"",
                rename.at, rename.by, rename.name
            );
        }
        let _ = writeln!(out, "members:");
        for member in &self.members {
            match member.left_at {
                Some(left) => {
                    let _ = writeln!(
                        out,
                        "  {} joined {} left {}",
                        member.user_id, member.joined_at, left
                    );
                }
                None => {
                    let _ = writeln!(out, "  {} joined {}", member.user_id, member.joined_at);
                }
            }
        }
        let _ = writeln!(out, "messages:");
        for message in &self.messages {
            let kind = if message.kind == "auto_reply" {
                " (automatic reply)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {} {} {}{kind}",
                message.sent_at, message.author, message.message_id
            );
            if let Some(reply_to) = &message.reply_to {
                let _ = writeln!(out, "    in reply to {reply_to}");
            }
            for (index, version) in message.versions.iter().enumerate() {
                if index == 0 {
                    let _ = writeln!(out, "    body: {}", version.body);
                } else {
                    let _ = writeln!(
                        out,
                        "    edited {} by {}: {}",
                        version.at, version.by, version.body
                    );
                }
            }
            for attachment in &message.attachments {
                match attachment {
                    Attachment::File {
                        file_id,
                        name,
                        size,
                        ..
                    } => {
                        let _ = writeln!(out, "    file {file_id} \"{name}\" ({size} bytes)");
                    }
                    Attachment::Link { url, .. } => {
                        let _ = writeln!(out, "    link {url}");
                    }
                }
            }
            if let Some(deleted) = &message.deleted {
                let _ = writeln!(
                    out,
                    "    deleted {} by {} (was: {})",
                    deleted.at, deleted.by, deleted.body
                );
            }
        }
        if !self.reports.is_empty() {
            let _ = writeln!(out, "reports:");
            for report in &self.reports {
                let details = report
                    .details
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {} {} reported {} ({}){details}",
                    report.at, report.reporter, report.message_id, report.reason
                );
            }
        }
        if !self.calls.is_empty() {
            let _ = writeln!(out, "calls:");
            for call in &self.calls {
                match (call.ended_at, call.duration_ms) {
                    (Some(ended), Some(duration)) => {
                        let _ = writeln!(
                            out,
                            "  {} {} call by {} ended {} ({} ms)",
                            call.started_at, call.media, call.started_by, ended, duration
                        );
                    }
                    _ => {
                        let _ = writeln!(
                            out,
                            "  {} {} call by {} (in progress)",
                            call.started_at, call.media, call.started_by
                        );
                    }
                }
            }
        }
        out
    }
}
