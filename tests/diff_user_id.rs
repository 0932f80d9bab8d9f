//! A published message's `user_id` must be the user who logged in, unless that user has the
//! `impersonator` tag: against RabbitMQ and the embedded broker alike, from one definitions
//! document loaded into both.
mod common;

use lapin::{BasicProperties, Connection, ConnectionProperties};
use rabbitscope::broker::{BrokerConfig, Password};
use rabbitscope::definitions::{password_hash, Definitions};
use serde_json::{json, Value};

use common::client::{channel, declare_queue, publish_with};

const PASSWORD: &str = "user-id-secret";

struct Cast {
    vhost: String,
    /// No tags.
    plain: String,
    /// `management` and `impersonator`.
    impersonator: String,
}

impl Cast {
    fn new() -> Cast {
        Cast {
            vhost: common::unique("userid"),
            plain: common::unique("plain"),
            impersonator: common::unique("impersonator"),
        }
    }

    fn definitions(&self) -> Value {
        let hash = password_hash(&Password::Plain(PASSWORD.into()));
        let user = |name: &str, tags: &str| json!({ "name": name, "password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": tags });
        let all = |name: &str| json!({ "user": name, "vhost": self.vhost, "configure": ".*", "write": ".*", "read": ".*" });
        json!({
            "users": [user(&self.plain, ""), user(&self.impersonator, "management,impersonator")],
            "vhosts": [{ "name": self.vhost }],
            "permissions": [all(&self.plain), all(&self.impersonator)],
        })
    }
}

/// Each user publishes with no `user_id`, its own and the other's; then a new channel on the
/// same connection publishes (a refusal closes the channel only).
async fn scenario(address: &str, cast: &Cast) -> Vec<String> {
    let mut t = Vec::new();
    for (user, other) in [
        (&cast.plain, &cast.impersonator),
        (&cast.impersonator, &cast.plain),
    ] {
        let who = if user == &cast.plain {
            "plain"
        } else {
            "impersonator"
        };
        let url = format!("amqp://{user}:{PASSWORD}@{address}/{}", cast.vhost);
        let conn = Connection::connect(&url, ConnectionProperties::default())
            .await
            .expect("login");
        let queue = format!("{who}-q");
        declare_queue(&channel(&conn).await, &queue).await;
        for (label, user_id) in [("none", None), ("own", Some(user)), ("other", Some(other))] {
            let mut properties = BasicProperties::default();
            if let Some(id) = user_id {
                properties = properties.with_user_id(id.as_str().into());
            }
            let ch = channel(&conn).await;
            let outcome = publish_with(&ch, "", &queue, "m", properties, false).await;
            t.push(format!("{who} user_id {label}: {outcome}"));
            let next = publish_with(
                &channel(&conn).await,
                "",
                &queue,
                "m",
                BasicProperties::default(),
                false,
            )
            .await;
            t.push(format!("{who} then a new channel: {next}"));
        }
        // Which refusal comes first when several apply.
        let bad_expiration = BasicProperties::default().with_expiration("-5".into());
        let both = bad_expiration.clone().with_user_id(other.as_str().into());
        let outcome = publish_with(&channel(&conn).await, "", &queue, "m", both, false).await;
        t.push(format!("{who} other user_id and bad expiration: {outcome}"));
        let nowhere = publish_with(
            &channel(&conn).await,
            "no-such-exchange",
            &queue,
            "m",
            bad_expiration,
            false,
        )
        .await;
        t.push(format!("{who} bad expiration to no exchange: {nowhere}"));
        let _ = conn.close(200, "OK".into()).await;
    }
    t
}

#[tokio::test]
async fn user_id_must_be_the_logged_in_user_unless_impersonating_as_in_rabbitmq() {
    let cast = Cast::new();
    let reference = {
        let _made = common::imported::Imported::new(&cast.definitions());
        scenario("127.0.0.1:5672", &cast).await
    };
    common::client::show(&reference);
    common::client::assert_has(
        &reference,
        &[
            "plain user_id own: ack",
            "impersonator user_id other: ack",
            "plain then a new channel: ack",
        ],
    );
    assert!(
        reference
            .iter()
            .any(|l| l.starts_with("plain user_id other: 406")),
        "{reference:#?}"
    );

    let definitions: Definitions = serde_json::from_value(cast.definitions()).unwrap();
    let config = definitions.configure(BrokerConfig::default()).unwrap();
    let (url, _broker) = common::start_embedded_with(config).await;
    let address = url
        .trim_start_matches("amqp://guest:guest@")
        .trim_end_matches("/%2f")
        .to_string();
    let embedded = scenario(&address, &cast).await;
    assert_eq!(
        embedded, reference,
        "embedded broker (left) and RabbitMQ (right)"
    );
}

#[test]
fn tags_are_read_from_a_string_or_a_list_and_kept() {
    let definitions: Definitions = serde_json::from_value(json!({
        "users": [
            { "name": "a", "password": "p", "tags": "administrator, impersonator" },
            { "name": "b", "password": "p", "tags": ["impersonator"] },
            { "name": "c", "password": "p" },
        ],
    }))
    .unwrap();
    let config = definitions.configure(BrokerConfig::default()).unwrap();
    let tags = |name: &str| {
        config
            .users
            .iter()
            .find(|u| u.name == name)
            .unwrap()
            .tags
            .clone()
    };
    assert_eq!(tags("a"), ["administrator", "impersonator"]);
    assert_eq!(tags("b"), ["impersonator"]);
    assert!(tags("c").is_empty());

    let dir = std::env::temp_dir().join(common::unique("kept-tags"));
    rabbitscope::definitions::keep(&config, &dir).unwrap();
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("definitions.json")).unwrap())
            .unwrap();
    let kept_a = kept["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "a")
        .unwrap();
    assert_eq!(kept_a["tags"], "administrator,impersonator");
    let reloaded = rabbitscope::definitions::load_kept(&dir).unwrap().unwrap();
    let config = reloaded.configure(BrokerConfig::default()).unwrap();
    assert!(config
        .users
        .iter()
        .any(|u| u.name == "b" && u.tags == ["impersonator"]));
    std::fs::remove_dir_all(&dir).unwrap();
}
