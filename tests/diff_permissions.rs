//! Permissions (configure, write, read per user and vhost), against RabbitMQ and the embedded
//! broker alike.
//!
//! One definitions document makes the same users, vhost and permissions on both: RabbitMQ
//! imports it through its management API, the embedded broker loads it as `--definitions` does.
//! Every method is then tried by alice (`^alice-.*` everywhere), bob (empty strings: nothing)
//! and carol (`.*`), and what each broker answered (ok, or the code and reply text) must be the
//! same.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, ExchangeBindOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, ExchangeUnbindOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use rabbitscope::broker::{BrokerConfig, Password};
use rabbitscope::definitions::{password_hash, Definitions};
use serde_json::{json, Value};

use common::client::{channel, code, consume, declare_exchange, declare_queue, next, publish};
use common::process::spawn_broker;

const PASSWORD: &str = "perm-secret";

/// The users of one scenario; their names are unique because RabbitMQ's users are global.
struct Cast {
    vhost: String,
    alice: String,
    bob: String,
    carol: String,
    /// No permission entry for the vhost at all.
    dave: String,
    /// `alice-` unanchored to configure, only the default exchange to write, nothing to read.
    erin: String,
    /// Everything, but on the topic exchange `guest-topic` only routing keys starting with
    /// their own name to publish and `news.` to bind.
    frank: String,
    /// Loaded with an empty `password_hash`: no password logs in.
    locked: String,
    /// Loaded with a SHA-512 `password_hash`.
    sha512: String,
}

impl Cast {
    fn new() -> Cast {
        Cast {
            vhost: common::unique("perm"),
            alice: common::unique("alice"),
            bob: common::unique("bob"),
            carol: common::unique("carol"),
            dave: common::unique("dave"),
            erin: common::unique("erin"),
            frank: common::unique("frank"),
            locked: common::unique("locked"),
            sha512: common::unique("sha512"),
        }
    }

    /// RabbitMQ's definitions format. Guest is not among the users (RabbitMQ's own guest is
    /// left alone), only given every permission in the vhost.
    fn definitions(&self) -> Value {
        let sha256 = password_hash(&Password::Plain(PASSWORD.into()));
        let user = |name: &str, hash: &str, algorithm: &str| json!({ "name": name, "password_hash": hash, "hashing_algorithm": algorithm, "tags": "" });
        let permission = |name: &str, configure: &str, write: &str, read: &str| json!({ "user": name, "vhost": self.vhost, "configure": configure, "write": write, "read": read });
        let plain = "rabbit_password_hashing_sha256";
        json!({
            "users": [
                user(&self.alice, &sha256, plain),
                user(&self.bob, &sha256, plain),
                user(&self.carol, &sha256, plain),
                user(&self.dave, &sha256, plain),
                user(&self.erin, &sha256, plain),
                user(&self.frank, &sha256, plain),
                user(&self.locked, "", plain),
                user(&self.sha512, &sha512_hash(PASSWORD), "rabbit_password_hashing_sha512"),
            ],
            "vhosts": [{ "name": self.vhost }],
            "permissions": [
                permission("guest", ".*", ".*", ".*"),
                permission(&self.alice, "^alice-.*", "^alice-.*", "^alice-.*"),
                permission(&self.bob, "", "", ""),
                permission(&self.carol, ".*", ".*", ".*"),
                permission(&self.erin, "alice-", "^amq\\.default$", ""),
                permission(&self.frank, ".*", ".*", ".*"),
                permission(&self.locked, ".*", ".*", ".*"),
                permission(&self.sha512, ".*", ".*", ".*"),
            ],
            "topic_permissions": [{
                "user": self.frank, "vhost": self.vhost, "exchange": "guest-topic",
                "write": "^{username}\\.", "read": "^news\\.",
            }],
        })
    }

    fn url(&self, address: &str, user: &str, password: &str) -> String {
        format!("amqp://{user}:{password}@{address}/{}", self.vhost)
    }
}

/// RabbitMQ's SHA-512 `password_hash`: base64 of a 4-byte salt and SHA-512(salt ++ password).
fn sha512_hash(password: &str) -> String {
    use sha2::{Digest, Sha512};
    let salt: [u8; 4] = rand::random();
    let mut bytes = salt.to_vec();
    bytes.extend(
        Sha512::new()
            .chain_update(salt)
            .chain_update(password.as_bytes())
            .finalize(),
    );
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One AMQP method, as a user tries it.
#[derive(Debug)]
enum Op<'a> {
    DeclareQueue(&'a str),
    PassiveQueue(&'a str),
    /// A queue with `x-dead-letter-exchange` set to the second name.
    DeclareQueueDeadLettering(&'a str, &'a str),
    DeclareExchange(&'a str),
    PassiveExchange(&'a str),
    /// An exchange with `alternate-exchange` set to the second name.
    DeclareExchangeWithAlternate(&'a str, &'a str),
    /// exchange, routing key
    Publish(&'a str, &'a str),
    Get(&'a str),
    Purge(&'a str),
    Consume(&'a str),
    DeleteQueue(&'a str),
    DeleteExchange(&'a str),
    /// queue, exchange (routing key `k`)
    BindQueue(&'a str, &'a str),
    /// queue, exchange, routing key
    BindQueueKey(&'a str, &'a str, &'a str),
    UnbindQueueKey(&'a str, &'a str, &'a str),
    /// destination, source, routing key
    BindExchangeKey(&'a str, &'a str, &'a str),
    UnbindQueue(&'a str, &'a str),
    /// destination, source
    BindExchange(&'a str, &'a str),
    UnbindExchange(&'a str, &'a str),
}

fn string_arg(key: &str, value: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(key.into(), common::client::text(value));
    t
}

/// Runs `op` on a fresh channel of `conn`: "ok", or the error's code and reply text (a
/// server-generated queue name shown as `amq.gen-*`).
async fn attempt(conn: &Connection, op: &Op<'_>) -> String {
    let ch = channel(conn).await;
    let none = FieldTable::default;
    let result: lapin::Result<()> = match *op {
        Op::DeclareQueue(q) => ch
            .queue_declare(q.into(), QueueDeclareOptions::default(), none())
            .await
            .map(drop),
        Op::PassiveQueue(q) => ch
            .queue_declare(
                q.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                none(),
            )
            .await
            .map(drop),
        Op::DeclareQueueDeadLettering(q, dlx) => ch
            .queue_declare(
                q.into(),
                QueueDeclareOptions::default(),
                string_arg("x-dead-letter-exchange", dlx),
            )
            .await
            .map(drop),
        Op::DeclareExchange(x) => {
            ch.exchange_declare(
                x.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                none(),
            )
            .await
        }
        Op::PassiveExchange(x) => {
            ch.exchange_declare(
                x.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                none(),
            )
            .await
        }
        Op::DeclareExchangeWithAlternate(x, ae) => {
            ch.exchange_declare(
                x.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                string_arg("alternate-exchange", ae),
            )
            .await
        }
        Op::Publish(x, key) => {
            let answer = publish(&ch, x, key, "hello").await;
            if answer == "ack" {
                Ok(())
            } else {
                return scrub_generated(&answer);
            }
        }
        Op::Get(q) => ch
            .basic_get(q.into(), BasicGetOptions { no_ack: false })
            .await
            .map(drop),
        Op::Purge(q) => ch
            .queue_purge(q.into(), QueuePurgeOptions::default())
            .await
            .map(drop),
        Op::Consume(q) => ch
            .basic_consume(q.into(), "".into(), BasicConsumeOptions::default(), none())
            .await
            .map(drop),
        Op::DeleteQueue(q) => ch
            .queue_delete(q.into(), QueueDeleteOptions::default())
            .await
            .map(drop),
        Op::DeleteExchange(x) => {
            ch.exchange_delete(x.into(), ExchangeDeleteOptions::default())
                .await
        }
        Op::BindQueue(q, x) => {
            ch.queue_bind(
                q.into(),
                x.into(),
                "k".into(),
                QueueBindOptions::default(),
                none(),
            )
            .await
        }
        Op::BindQueueKey(q, x, key) => {
            ch.queue_bind(
                q.into(),
                x.into(),
                key.into(),
                QueueBindOptions::default(),
                none(),
            )
            .await
        }
        Op::UnbindQueueKey(q, x, key) => {
            ch.queue_unbind(q.into(), x.into(), key.into(), none())
                .await
        }
        Op::BindExchangeKey(d, s, key) => {
            ch.exchange_bind(
                d.into(),
                s.into(),
                key.into(),
                ExchangeBindOptions::default(),
                none(),
            )
            .await
        }
        Op::UnbindQueue(q, x) => {
            ch.queue_unbind(q.into(), x.into(), "k".into(), none())
                .await
        }
        Op::BindExchange(d, s) => {
            ch.exchange_bind(
                d.into(),
                s.into(),
                "k".into(),
                ExchangeBindOptions::default(),
                none(),
            )
            .await
        }
        Op::UnbindExchange(d, s) => {
            ch.exchange_unbind(
                d.into(),
                s.into(),
                "k".into(),
                ExchangeUnbindOptions::default(),
                none(),
            )
            .await
        }
    };
    match result {
        Ok(()) => {
            let _ = ch.close(200, "OK".into()).await;
            "ok".to_string()
        }
        Err(e) => scrub_generated(&code(&e)),
    }
}

fn scrub_generated(text: &str) -> String {
    let generated = regex::Regex::new(r"amq\.gen-[A-Za-z0-9_-]+").unwrap();
    generated.replace_all(text, "amq.gen-*").into_owned()
}

async fn login(url: &str) -> lapin::Result<Connection> {
    Connection::connect(url, ConnectionProperties::default()).await
}

/// The reported case: ten operations each by alice and bob on what guest made.
fn reported<'a>() -> Vec<Op<'a>> {
    vec![
        Op::DeclareQueue("alice-q"),
        Op::DeclareQueue("other-q"),
        Op::DeclareExchange("other-x"),
        Op::Publish("", "guest-q"),
        Op::Publish("guest-x", "k"),
        Op::Get("guest-q"),
        Op::Purge("guest-q"),
        Op::BindQueue("guest-q", "guest-x"),
        Op::Consume("guest-q"),
        Op::DeleteQueue("guest-q"),
    ]
}

/// Each rule on its own, in an order where what a step needs was made by an earlier one.
fn rules<'a>() -> Vec<Op<'a>> {
    vec![
        // Passive declares only look.
        Op::PassiveQueue("guest-q"),
        Op::PassiveExchange("guest-x"),
        // Configure is checked on existing queues too, and before the queue is looked up.
        Op::DeclareQueue("guest-q"),
        Op::DeleteQueue("nobody-q"),
        Op::Get("nobody-q"),
        // A server-named queue is checked by the name it gets; reserved names before that.
        Op::DeclareQueue(""),
        Op::DeclareQueue("amq.mine"),
        Op::DeclareExchange("amq.direct"),
        // Dead-letter and alternate exchanges count only when the queue or exchange is new.
        Op::DeclareQueueDeadLettering("alice-guest-dl", "guest-x"),
        Op::DeclareExchangeWithAlternate("alice-guest-ae", "guest-x"),
        Op::DeclareExchange("alice-x"),
        Op::DeclareExchange("alice-ae"),
        Op::DeclareQueue("alice-q"),
        // Dead-lettering writes to the exchange, alternate exchanges are written to.
        Op::DeclareQueueDeadLettering("alice-dl1", "guest-x"),
        Op::DeclareQueueDeadLettering("alice-dl2", "alice-x"),
        Op::DeclareQueueDeadLettering("alice-dl3", ""),
        Op::DeclareExchangeWithAlternate("alice-ax1", "guest-x"),
        Op::DeclareExchangeWithAlternate("alice-ax2", "alice-x"),
        // Binding writes the destination and reads the source.
        Op::BindQueue("alice-q", "alice-x"),
        Op::BindQueue("alice-q", "guest-x"),
        Op::BindQueue("guest-q", "alice-x"),
        Op::BindQueue("guest-q", ""),
        Op::UnbindQueue("alice-q", "alice-x"),
        Op::UnbindQueue("guest-q", "guest-x"),
        Op::BindExchange("alice-ae", "alice-x"),
        Op::BindExchange("alice-ae", "guest-x"),
        Op::BindExchange("guest-x", "alice-x"),
        Op::UnbindExchange("alice-ae", "alice-x"),
        Op::Publish("alice-x", "k"),
        Op::Publish("", "alice-q"),
        Op::Publish("nobody-x", "k"),
        Op::Publish("alice-none", "k"),
        Op::Get("alice-q"),
        Op::Purge("alice-q"),
        Op::Consume("alice-q"),
        // The default exchange and system exchanges are refused before any permission.
        Op::DeclareExchange(""),
        Op::DeleteExchange("amq.direct"),
        Op::DeleteExchange("amq.none"),
        Op::DeleteExchange("guest-x"),
        Op::DeleteQueue("alice-q"),
        Op::DeleteExchange("alice-x"),
    ]
}

/// Everything tried, by everyone, on the broker at `address`; the transcript.
async fn scenario(address: &str, cast: &Cast) -> Vec<String> {
    let mut t = Vec::new();
    let as_user = |user: &str| cast.url(address, user, PASSWORD);
    let guest = login(&cast.url(address, "guest", "guest")).await.unwrap();
    let setup = channel(&guest).await;
    declare_queue(&setup, "guest-q").await;
    declare_exchange(&setup, "guest-x", ExchangeKind::Direct).await;
    common::client::bind(&setup, "guest-q", "guest-x", "k").await;
    t.push(format!(
        "guest publishes: {}",
        publish(&setup, "guest-x", "k", "kept").await
    ));
    let dead_lettering = string_arg("x-dead-letter-exchange", "guest-x");
    setup
        .queue_declare(
            "alice-guest-dl".into(),
            QueueDeclareOptions::default(),
            dead_lettering,
        )
        .await
        .unwrap();
    setup
        .exchange_declare(
            "alice-guest-ae".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            string_arg("alternate-exchange", "guest-x"),
        )
        .await
        .unwrap();
    declare_exchange(&setup, "guest-topic", ExchangeKind::Topic).await;
    // A permitted client that must keep being served while the others are refused.
    declare_queue(&setup, "guest-watch").await;
    let mut watcher = consume(&setup, "guest-watch", "watcher", true).await;

    let mut refused = 0;
    let mut tried = 0;
    for user in [&cast.alice, &cast.bob] {
        let conn = login(&as_user(user)).await.unwrap();
        let name = if *user == cast.alice { "alice" } else { "bob" };
        for op in reported() {
            let answer = attempt(&conn, &op).await;
            tried += 1;
            refused += usize::from(answer.starts_with("403 "));
            t.push(format!("reported: {name} {op:?}: {answer}"));
        }
        t.push(format!(
            "{name}'s connection open after the refusals: {}",
            conn.status().connected()
        ));
        let _ = conn.close(200, "OK".into()).await;
    }
    t.push(format!("reported: {refused} of {tried} refused"));
    t.push(format!(
        "guest-q still has its message: {}",
        common::client::inspect_queue(&guest, "guest-q").await
    ));

    for (name, user) in [
        ("alice", &cast.alice),
        ("bob", &cast.bob),
        ("carol", &cast.carol),
    ] {
        let conn = login(&as_user(user)).await.unwrap();
        for op in rules() {
            let answer = attempt(&conn, &op).await;
            t.push(format!("{name} {op:?}: {answer}"));
        }
        let _ = conn.close(200, "OK".into()).await;
    }

    let erin = login(&as_user(&cast.erin)).await.unwrap();
    for op in [
        Op::DeclareQueue("my-alice-q"),
        Op::DeclareQueue("alice"),
        Op::Publish("", "my-alice-q"),
        Op::Publish("amq.direct", "k"),
        Op::Get("my-alice-q"),
        Op::DeleteQueue("my-alice-q"),
    ] {
        let answer = attempt(&erin, &op).await;
        t.push(format!("erin {op:?}: {answer}"));
    }
    let _ = erin.close(200, "OK".into()).await;

    // Topic permissions: frank's own routing keys on guest-topic, nothing else limited.
    let frank = login(&as_user(&cast.frank)).await.unwrap();
    let own_key = format!("{}.created", cast.frank);
    for op in [
        Op::DeclareQueue("frank-q"),
        Op::DeclareExchange("frank-x"),
        Op::Publish("guest-topic", &own_key),
        Op::Publish("guest-topic", "other.created"),
        Op::Publish("amq.direct", "other.created"),
        Op::Publish("amq.topic", "other.created"),
        Op::BindQueueKey("frank-q", "guest-topic", "news.#"),
        Op::BindQueueKey("frank-q", "guest-topic", "sport.#"),
        Op::UnbindQueueKey("frank-q", "guest-topic", "sport.#"),
        Op::BindExchangeKey("frank-x", "guest-topic", "sport.#"),
        Op::BindQueueKey("frank-q", "amq.direct", "sport.#"),
        Op::BindQueueKey("frank-q", "nobody-topic", "sport.#"),
    ] {
        let answer = attempt(&frank, &op).await;
        let shown = format!("{op:?}").replace(&cast.frank, "<frank>");
        t.push(format!("frank {shown}: {answer}"));
    }
    let _ = frank.close(200, "OK".into()).await;

    let outcome = |r: lapin::Result<Connection>| match r {
        Ok(_) => "connected".to_string(),
        Err(e) => code(&e),
    };
    t.push(format!(
        "dave (no permissions here) connects: {}",
        outcome(login(&as_user(&cast.dave)).await)
    ));
    let missing = format!("amqp://{}:{PASSWORD}@{address}/no-such-vhost", cast.carol);
    t.push(format!(
        "carol connects to a vhost that does not exist: {}",
        outcome(login(&missing).await)
    ));
    t.push(format!(
        "locked user with the password: {}",
        outcome(login(&as_user(&cast.locked)).await)
    ));
    t.push(format!(
        "locked user with an empty password: {}",
        outcome(login(&cast.url(address, &cast.locked, "")).await)
    ));
    t.push(format!(
        "sha512 user with its password: {}",
        outcome(login(&as_user(&cast.sha512)).await)
    ));
    t.push(format!(
        "sha512 user with another password: {}",
        outcome(login(&cast.url(address, &cast.sha512, "wrong")).await)
    ));

    t.push(format!(
        "guest is still served: {}",
        publish(&setup, "", "guest-watch", "still here").await
    ));
    t.push(format!(
        "the watcher receives: {}",
        next(&mut watcher, Duration::from_secs(5))
            .await
            .map(|d| common::client::body(&d))
            .unwrap_or_else(|e| e)
    ));
    let _ = guest.close(200, "OK".into()).await;
    t
}

#[tokio::test]
async fn every_method_is_permitted_or_refused_as_rabbitmq_does() {
    let cast = Cast::new();
    let reference = {
        let _made = common::imported::Imported::new(&cast.definitions());
        scenario("127.0.0.1:5672", &cast).await
    };
    common::client::show(&reference);
    // What RabbitMQ answered is the ground truth; these lines pin the reported case.
    common::client::assert_has(
        &reference,
        &[
            "reported: 19 of 20 refused",
            "reported: alice DeclareQueue(\"alice-q\"): ok",
            "guest is still served: ack",
            "the watcher receives: still here",
        ],
    );

    let definitions: Definitions = serde_json::from_value(cast.definitions()).unwrap();
    let config = definitions.configure(BrokerConfig::default()).unwrap();
    let (url, _broker) = common::start_embedded_with(config).await;
    let address = url
        .trim_start_matches("amqp://guest:guest@")
        .trim_end_matches("/%2f")
        .to_string();
    let embedded = scenario(&address, &cast).await;
    let differing: Vec<_> = embedded
        .iter()
        .zip(&reference)
        .filter(|(e, r)| e != r)
        .collect();
    assert!(
        differing.is_empty() && embedded.len() == reference.len(),
        "embedded broker (left) differs from RabbitMQ (right): {differing:#?}"
    );
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rabbitscope-permissions-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The permissions the data directory kept for `user` in `vhost`: (configure, write, read).
fn kept_permission(dir: &Path, user: &str, vhost: &str) -> (String, String, String) {
    let text = std::fs::read_to_string(dir.join("definitions.json")).unwrap();
    let kept: Value = serde_json::from_str(&text).unwrap();
    let p = kept["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user"] == user && p["vhost"] == vhost)
        .unwrap_or_else(|| panic!("no permission for {user} in {text}"));
    let field = |name: &str| p[name].as_str().unwrap().to_string();
    (field("configure"), field("write"), field("read"))
}

/// The real binary loads the definitions, refuses over the wire, and keeps the exact
/// expressions in its data directory across a restart.
#[tokio::test]
async fn the_broker_process_refuses_and_keeps_the_exact_permissions() {
    let cast = Cast::new();
    let dir = temp_dir();
    let file = dir.join("given.json");
    std::fs::write(&file, cast.definitions().to_string()).unwrap();
    let data = dir.join("data");
    let start = |with_definitions: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rabbitscope"));
        command.args(["broker", "--listen", "127.0.0.1:0", "--data-dir"]);
        command.arg(&data);
        if with_definitions {
            command.arg("--definitions").arg(&file);
        }
        spawn_broker(&mut command)
    };

    let mut first = start(true);
    let address = first.field("address=");
    let alice = login(&cast.url(&address, &cast.alice, PASSWORD))
        .await
        .unwrap();
    let carol = login(&cast.url(&address, &cast.carol, PASSWORD))
        .await
        .unwrap();
    let carol_ch = channel(&carol).await;
    declare_queue(&carol_ch, "carol-q").await;
    assert_eq!(
        attempt(&alice, &Op::DeleteQueue("carol-q")).await,
        "403 ACCESS-REFUSED (ACCESS_REFUSED - access to queue 'carol-q' in vhost '<name>' refused for user '<name>')"
    );
    assert_eq!(attempt(&alice, &Op::DeclareQueue("alice-q")).await, "ok");
    assert_eq!(publish(&carol_ch, "", "carol-q", "served").await, "ack");
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let expected = |s: &str| (s.to_string(), s.to_string(), s.to_string());
    assert_eq!(
        kept_permission(&data, &cast.alice, &cast.vhost),
        expected("^alice-.*")
    );
    assert_eq!(kept_permission(&data, &cast.bob, &cast.vhost), expected(""));
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("definitions.json")).unwrap())
            .unwrap();
    assert_eq!(
        kept["topic_permissions"],
        json!([{
            "user": cast.frank, "vhost": cast.vhost, "exchange": "guest-topic",
            "write": "^{username}\\.", "read": "^news\\.",
        }])
    );

    // Started again from the data directory alone.
    let mut second = start(false);
    let address = second.field("address=");
    let bob = login(&cast.url(&address, &cast.bob, PASSWORD))
        .await
        .unwrap();
    assert!(attempt(&bob, &Op::Publish("", "carol-q"))
        .await
        .contains("access to exchange 'amq.default' in vhost '<name>' refused for user '<name>'"));
    let alice = login(&cast.url(&address, &cast.alice, PASSWORD))
        .await
        .unwrap();
    assert_eq!(attempt(&alice, &Op::DeclareQueue("alice-q2")).await, "ok");
    assert_eq!(
        kept_permission(&data, &cast.alice, &cast.vhost),
        expected("^alice-.*")
    );
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
