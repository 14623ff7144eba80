//! The coordinator's JSON read back through confab-protocol's types, which the client reads
//! it with: the call answers (get, get-or-create, join, go live) and the events. The
//! coordinator writes more than the types name (settings, ingress, ...); what the types name
//! must be there under the same names.

mod support;

use confab_protocol::{
    CallEvent, CallResponse, EventType, MembersEvent, MembersRemovedEvent, ParticipantEvent,
    UserResponse,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use support::*;

fn read<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value:#}"))
}

#[tokio::test]
async fn answers_and_events_read_as_the_protocol_types() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let host = c.mint_token("host", None);
    let fan = c.mint_token("fan", None);
    let (mut fan_socket, ok) = connect_user(&c, "fan", &fan).await;
    let me: UserResponse = read(&ok["me"]);
    assert_eq!(me.id, "fan");

    let (status, created) = rest
        .post(
            "/call/livestream/types",
            As::User("host", &host),
            json!({"data": {"members": [{"user_id": "fan", "role": "viewer"}]}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let created: CallResponse = read(&created);
    assert!(created.created && created.backstage());
    assert_eq!(created.cid(), "livestream:types");
    assert_eq!(created.call.call_type, "livestream");
    assert_eq!(
        created.call.created_by.as_ref().map(|u| u.id.as_str()),
        Some("host")
    );
    assert_eq!(created.members[0].user_id, "fan");
    assert!(created.can("go-live"));
    let event: CallEvent =
        read(&next_event(&mut fan_socket, EventType::CallCreated.as_str()).await);
    assert_eq!(event.call.cid, "livestream:types");

    let (_, live) = rest
        .post(
            "/call/livestream/types/go_live",
            As::User("host", &host),
            json!({}),
        )
        .await;
    let live: CallResponse = read(&live);
    assert!(!live.backstage());
    let event: CallEvent =
        read(&next_event(&mut fan_socket, EventType::CallLiveStarted.as_str()).await);
    assert!(!event.call.backstage);

    let (status, joined) = rest
        .post(
            "/call/livestream/types/join",
            As::User("host", &host),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{joined}");
    let joined: CallResponse = read(&joined);
    let credentials = joined.credentials.expect("join hands out credentials");
    assert!(credentials.server.url.ends_with("/video/sfu"));
    let session = joined.call.session.expect("the join started a session");
    assert_eq!(session.participants[0].user.id, "host");
    let event: ParticipantEvent =
        read(&next_event(&mut fan_socket, EventType::ParticipantJoined.as_str()).await);
    assert_eq!(event.participant.user.id, "host");
    assert_eq!(event.session_id, session.id);

    rest.post(
        "/call/livestream/types/members",
        As::User("host", &host),
        json!({"update_members": [{"user_id": "guest-1"}], "remove_members": ["fan"]}),
    )
    .await;
    let event: MembersRemovedEvent =
        read(&next_event(&mut fan_socket, EventType::MemberRemoved.as_str()).await);
    assert_eq!(event.members, ["fan"]);

    let (_, got) = rest
        .get("/call/livestream/types", As::User("host", &host))
        .await;
    let got: CallResponse = read(&got);
    assert_eq!(got.members[0].user_id, "guest-1");
    let (mut host_socket, ok) = connect_user(&c, "host", &host).await;
    let host_conn = ok["connection_id"].as_str().unwrap().to_owned();
    rest.send(
        reqwest::Method::GET,
        "/call/livestream/types",
        As::User("host", &host),
        Some(&host_conn),
        None,
    )
    .await;
    rest.post(
        "/call/livestream/types/members",
        As::User("host", &host),
        json!({"update_members": [{"user_id": "guest-2"}]}),
    )
    .await;
    let event: MembersEvent =
        read(&next_event(&mut host_socket, EventType::MemberAdded.as_str()).await);
    assert_eq!(event.members[0].user_id, "guest-2");
}
