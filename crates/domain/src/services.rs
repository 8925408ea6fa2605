//! Which service may send which service command (security.md H-I2): the table, its defaults and
//! its check. Pure like the rest of the domain; the operator's file (`--services FILE`) is read
//! and parsed by the writer, which hands the entries to [`ServiceTable::new`].
//!
//! `decide` already refuses a user sending a service command and a service sending a user
//! command; this table narrows each service to its own service commands, so a compromised
//! hiring service cannot register users or upload-register files.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{Command, COMMAND_TYPES};
use crate::ids::Actor;
use crate::rejection::{ErrorCode, Rejection};

/// The table of security.md H-I2 when no operator file changes it: each service and the
/// service commands it may send. Together they name every service command of protocol.md §1,
/// each once, which is also how an operator file's command types are checked.
pub const DEFAULT_SERVICES: [(&str, &[&str]); 4] = [
    ("identity", &["user.register"]),
    ("hiring", &["room.open_interview"]),
    ("contracts", &["contract.start", "contract.end"]),
    ("gateway", &["file.register"]),
];

/// Why a table could not be built from an operator's entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceTableError {
    /// The name is not one a `service:<name>` actor can have.
    #[error("service {name:?}: not a valid service name (letters, digits, '-', '_', '.', up to 64 characters with 'service:')")]
    InvalidName {
        /// The name as written.
        name: String,
    },
    /// The command type is not one of protocol.md §1.
    #[error("service {name:?}: {command_type:?} is not a command type")]
    UnknownCommand {
        /// The service.
        name: String,
        /// The type as written.
        command_type: String,
    },
    /// The command type is sent by users; services may never send it.
    #[error("service {name:?}: {command_type:?} is a user command, which services may not send")]
    UserCommand {
        /// The service.
        name: String,
        /// The type as written.
        command_type: String,
    },
}

/// Each service's allowed service commands. A service absent from the table may send none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTable {
    allowed: BTreeMap<String, BTreeSet<&'static str>>,
}

impl Default for ServiceTable {
    /// [`DEFAULT_SERVICES`].
    fn default() -> ServiceTable {
        let entries = DEFAULT_SERVICES.iter().map(|(name, types)| {
            (
                (*name).to_owned(),
                types.iter().map(|&command_type| command_type.to_owned()),
            )
        });
        match ServiceTable::new(entries) {
            Ok(table) => table,
            // The defaults are constants checked by a test; an empty table would refuse every
            // service command rather than allow any.
            Err(_) => ServiceTable {
                allowed: BTreeMap::new(),
            },
        }
    }
}

impl ServiceTable {
    /// A table of exactly `entries` (service name without `service:`, its command types):
    /// an operator's file replaces the defaults rather than adding to them, so the file alone
    /// says who may send what. Every name and type is checked.
    pub fn new<Types>(
        entries: impl IntoIterator<Item = (String, Types)>,
    ) -> Result<ServiceTable, ServiceTableError>
    where
        Types: IntoIterator<Item = String>,
    {
        let mut allowed: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
        for (name, types) in entries {
            let is_service = matches!(
                Actor::parse(&format!("{}{name}", crate::ids::SERVICE_PREFIX)),
                Ok(Actor::Service(_))
            );
            if !is_service {
                return Err(ServiceTableError::InvalidName { name });
            }
            let commands = allowed.entry(name.clone()).or_default();
            for command_type in types {
                let Some(known) = COMMAND_TYPES.iter().find(|known| **known == command_type) else {
                    return Err(ServiceTableError::UnknownCommand { name, command_type });
                };
                if !is_service_command_type(known) {
                    return Err(ServiceTableError::UserCommand { name, command_type });
                }
                commands.insert(known);
            }
        }
        Ok(ServiceTable { allowed })
    }

    /// The command types `service` (without `service:`) may send; empty when it is unknown.
    pub fn commands_of(&self, service: &str) -> impl Iterator<Item = &'static str> + '_ {
        self.allowed
            .get(service)
            .into_iter()
            .flat_map(|types| types.iter().copied())
    }

    /// Every service in the table, by name.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.allowed.keys().map(String::as_str)
    }

    /// Refuses a service command from a service the table does not allow it to (`forbidden`).
    /// Users, and services sending user commands, are `decide`'s to judge.
    pub fn check(&self, command: &Command) -> Result<(), Rejection> {
        let Actor::Service(service) = &command.actor else {
            return Ok(());
        };
        if !command.action.is_service_command() {
            return Ok(());
        }
        let command_type = command.action.type_name();
        let allowed = self
            .allowed
            .get(service.as_str())
            .is_some_and(|types| types.contains(command_type));
        if allowed {
            Ok(())
        } else {
            Err(Rejection::new(
                ErrorCode::Forbidden,
                format!("service:{} may not send {command_type}", service.as_str()),
            ))
        }
    }
}

/// Whether `command_type` is a service command: [`DEFAULT_SERVICES`] names each exactly once.
fn is_service_command_type(command_type: &str) -> bool {
    DEFAULT_SERVICES
        .iter()
        .any(|(_, types)| types.contains(&command_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_build() {
        let table = ServiceTable::default();
        assert_eq!(
            table.services().collect::<Vec<_>>(),
            ["contracts", "gateway", "hiring", "identity"]
        );
        assert_eq!(
            table.commands_of("contracts").collect::<Vec<_>>(),
            ["contract.end", "contract.start"]
        );
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        let one = |name: &str, command_type: &str| {
            ServiceTable::new([(name.to_owned(), [command_type.to_owned()])])
        };
        assert!(matches!(
            one("has space", "user.register"),
            Err(ServiceTableError::InvalidName { .. })
        ));
        assert!(matches!(
            one("bench", "user.levitate"),
            Err(ServiceTableError::UnknownCommand { .. })
        ));
        assert!(matches!(
            one("bench", "message.send"),
            Err(ServiceTableError::UserCommand { .. })
        ));
        assert!(one("bench", "user.register").is_ok());
    }
}
