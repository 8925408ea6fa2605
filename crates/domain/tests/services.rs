//! security.md H-I2: each service may send only its own service commands, by the table (the
//! defaults, or an operator's replacement). The writer applies the table to every command before
//! `decide`; here the table is checked alone, as data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{
    Action, Actor, Client, Command, CommandId, ContractId, ErrorCode, InterviewId, ServiceTable,
    UserId, UserKind,
};

fn command(actor: &str, action: Action) -> Command {
    Command {
        command_id: CommandId(uuid::Uuid::from_u128(1)),
        actor: Actor::parse(actor).unwrap(),
        client: Client::Desktop,
        action,
    }
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn register() -> Action {
    Action::RegisterUser {
        user_id: user("mallory"),
        display_name: "Mallory".into(),
        kind: UserKind::Client,
    }
}

fn interview() -> Action {
    Action::OpenInterview {
        interview_id: InterviewId::parse("i-1").unwrap(),
        title: "Interview".into(),
        client: user("alice"),
        freelancer: user("bob"),
    }
}

fn end_contract() -> Action {
    Action::EndContract {
        contract_id: ContractId::parse("c-1").unwrap(),
    }
}

#[test]
fn h_i2_each_service_may_send_only_its_own_commands() {
    let table = ServiceTable::default();
    // (actor, action, allowed)
    let cases = [
        ("service:identity", register(), true),
        ("service:hiring", interview(), true),
        ("service:contracts", end_contract(), true),
        ("service:hiring", register(), false),
        ("service:identity", interview(), false),
        ("service:gateway", end_contract(), false),
        ("service:bench", register(), false),
    ];
    for (actor, action, allowed) in cases {
        let type_name = action.type_name();
        let checked = table.check(&command(actor, action));
        if allowed {
            assert_eq!(checked, Ok(()), "{actor} {type_name}");
        } else {
            let rejection = checked.expect_err(actor);
            assert_eq!(rejection.code, ErrorCode::Forbidden, "{actor} {type_name}");
            assert!(rejection.message.contains(actor), "{}", rejection.message);
        }
    }
    // Users and user commands are decide's to judge, not the table's.
    let block = Action::BlockUser {
        user_id: user("bob"),
    };
    assert_eq!(table.check(&command("alice", register())), Ok(()));
    assert_eq!(table.check(&command("service:hiring", block)), Ok(()));
}

#[test]
fn h_i2_an_operators_table_replaces_the_defaults() {
    let table =
        ServiceTable::new([("onboarding".to_owned(), vec!["user.register".to_owned()])]).unwrap();
    assert_eq!(
        table.check(&command("service:onboarding", register())),
        Ok(())
    );
    let refused = table.check(&command("service:identity", register()));
    assert_eq!(
        refused.map_err(|rejection| rejection.code),
        Err(ErrorCode::Forbidden)
    );
}
