//! The in-process bus: NATS core semantics inside one process, over bounded tokio channels.
//!
//! Used by `parlor up` (everything in one process) and by tests. Subjects, wildcards, queue
//! groups, request/reply through unique inbox subjects and "no responders" behave as in NATS
//! core. The subscription list is scanned linearly on every publish; it holds tens of entries
//! (services' subscriptions plus requests in flight), where a scan beats a trie.
//!
//! Publishing never waits. A subscriber whose channel is full misses the message, which is
//! counted in [`InProcessBus::dropped`], exactly like a NATS slow consumer. Blocking instead
//! would be worse: the writer publishes events while a projector may be waiting on a
//! `log.read` reply from that same writer, so a full projector channel would deadlock both.
//! Consumers detect the gap by position and catch up through `log.read`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::{subject, BusError, Message};

/// The in-process bus: a cheap handle to a shared subscription registry.
#[derive(Clone, Debug)]
pub(crate) struct InProcessBus {
    registry: Arc<Registry>,
}

#[derive(Debug)]
struct Registry {
    state: Mutex<State>,
    /// Each subscription channel's capacity, in messages.
    subscription_messages_max: usize,
    /// Source of subscription ids and inbox names, unique within this registry.
    next_id: AtomicU64,
    /// Messages not delivered because a subscriber's channel was full.
    dropped: AtomicU64,
    /// Never changes (nothing to reconnect to); kept so that receivers do not see it closed.
    reconnects: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// By id, so that iteration (and thus queue group round robin) is deterministic.
    subscriptions: BTreeMap<u64, Entry>,
    /// Per queue group name, the round-robin position of the next delivery.
    queue_cursors: HashMap<String, usize>,
}

#[derive(Debug)]
struct Entry {
    pattern: String,
    group: Option<String>,
    sender: mpsc::Sender<Message>,
}

/// The receiving end of an in-process subscription; dropping it unsubscribes.
#[derive(Debug)]
pub(crate) struct InProcessReceiver {
    receiver: mpsc::Receiver<Message>,
    registry: Arc<Registry>,
    id: u64,
}

impl InProcessBus {
    /// A new, empty bus whose subscription channels hold `subscription_messages_max` messages.
    pub(crate) fn new(subscription_messages_max: usize) -> InProcessBus {
        let (reconnects, _) = watch::channel(0);
        InProcessBus {
            registry: Arc::new(Registry {
                state: Mutex::new(State::default()),
                // A zero-capacity tokio channel panics; one message is the least that works.
                subscription_messages_max: subscription_messages_max.max(1),
                next_id: AtomicU64::new(1),
                dropped: AtomicU64::new(0),
                reconnects,
            }),
        }
    }

    /// Delivers a message to every matching plain subscription and to one member of each
    /// matching queue group. Returns how many subscriptions matched (0 means no responders).
    pub(crate) fn publish(&self, message: Message) -> usize {
        let mut state = self.registry.lock();
        let State {
            subscriptions,
            queue_cursors,
        } = &mut *state;
        let mut matched = 0;
        // Queue groups are keyed by name across all matching subjects, as nats-server does.
        let mut groups: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for entry in subscriptions.values() {
            if !subject::matches(&entry.pattern, &message.subject) {
                continue;
            }
            matched += 1;
            match &entry.group {
                None => {
                    if let Err(mpsc::error::TrySendError::Full(_)) =
                        entry.sender.try_send(message.clone())
                    {
                        self.registry.count_drop(&message.subject);
                    }
                }
                Some(group) => groups.entry(group.as_str()).or_default().push(entry),
            }
        }
        for (group, members) in groups {
            let cursor = match queue_cursors.get_mut(group) {
                Some(cursor) => cursor,
                None => queue_cursors.entry(group.to_owned()).or_insert(0),
            };
            let start = *cursor % members.len();
            *cursor = cursor.wrapping_add(1);
            // Round robin, but skip a full member rather than drop: nats-server picks one
            // member at random and drops on a full one; trying the others is strictly kinder.
            let delivered = (0..members.len())
                .map(|offset| members[(start + offset) % members.len()])
                .any(|member| member.sender.try_send(message.clone()).is_ok());
            if !delivered {
                self.registry.count_drop(&message.subject);
            }
        }
        matched
    }

    /// Subscribes to a validated pattern, optionally as a member of a queue group.
    pub(crate) fn subscribe(&self, pattern: &str, group: Option<&str>) -> InProcessReceiver {
        self.subscribe_with_capacity(pattern, group, self.registry.subscription_messages_max)
    }

    /// Sends a request and waits for the first reply, through a one-off inbox subscription.
    pub(crate) async fn request(
        &self,
        mut message: Message,
        timeout: Duration,
    ) -> Result<Message, BusError> {
        let id = self.registry.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = format!("_INBOX.{id}");
        // One reply is all a request takes; the inbox is dropped (unsubscribed) on return.
        let mut replies = self.subscribe_with_capacity(&inbox, None, 1);
        message.reply_to = Some(inbox);
        if self.publish(message) == 0 {
            return Err(BusError::NoResponders);
        }
        match tokio::time::timeout(timeout, replies.recv()).await {
            Ok(Some(reply)) => Ok(reply),
            // The registry owns no sender after the entry is removed, which only our own
            // drop does; treat it as closed rather than panic.
            Ok(None) => Err(BusError::Closed),
            Err(_elapsed) => Err(BusError::Timeout),
        }
    }

    /// Messages dropped so far because a subscriber's channel was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.registry.dropped.load(Ordering::Relaxed)
    }

    /// A receiver of the reconnect counter, which stays 0.
    pub(crate) fn reconnects(&self) -> watch::Receiver<u64> {
        self.registry.reconnects.subscribe()
    }

    fn subscribe_with_capacity(
        &self,
        pattern: &str,
        group: Option<&str>,
        capacity: usize,
    ) -> InProcessReceiver {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let id = self.registry.next_id.fetch_add(1, Ordering::Relaxed);
        self.registry.lock().subscriptions.insert(
            id,
            Entry {
                pattern: pattern.to_owned(),
                group: group.map(str::to_owned),
                sender,
            },
        );
        tracing::debug!(pattern, group, id, "in-process subscribe");
        InProcessReceiver {
            receiver,
            registry: Arc::clone(&self.registry),
            id,
        }
    }
}

impl Registry {
    /// Locks the state. A panic while the lock was held cannot leave it inconsistent (each
    /// update is a single insert or remove), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count_drop(&self, subject: &str) {
        let dropped = self
            .dropped
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        // Log at powers of two only: a stuck consumer must not flood the log.
        if dropped.is_power_of_two() {
            tracing::warn!(
                subject,
                dropped_total = dropped,
                "in-process bus dropped a message: a subscriber's channel is full (slow consumer)"
            );
        }
    }

    fn unsubscribe(&self, id: u64) {
        let mut state = self.lock();
        if let Some(entry) = state.subscriptions.remove(&id) {
            if let Some(group) = entry.group {
                let still_used = state
                    .subscriptions
                    .values()
                    .any(|other| other.group.as_deref() == Some(group.as_str()));
                if !still_used {
                    state.queue_cursors.remove(&group);
                }
            }
        }
    }
}

impl InProcessReceiver {
    /// The next message; `None` only if the bus were torn down, which cannot happen while
    /// this receiver holds the registry.
    pub(crate) async fn recv(&mut self) -> Option<Message> {
        self.receiver.recv().await
    }

    /// Polls for the next message (for the `Stream` implementation).
    pub(crate) fn poll_recv(
        &mut self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Message>> {
        self.receiver.poll_recv(context)
    }
}

impl Drop for InProcessReceiver {
    fn drop(&mut self) {
        self.registry.unsubscribe(self.id);
    }
}
