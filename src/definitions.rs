//! RabbitMQ definitions JSON (the format of `rabbitmqctl export_definitions` and the management
//! API's /api/definitions): users, vhosts, permissions, exchanges, queues and bindings.

use std::path::{Path, PathBuf};

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::broker::permissions::PermissionError;
use crate::broker::{
    AmqpError, BindingSpec, Broker, BrokerConfig, ChannelRef, ExchangeSpec, Password, Permission,
    QueueSpec, Target, TopicPermission, User,
};

/// Why definitions cannot be read, applied or kept. Each names the file, user or object at
/// fault; the I/O and base64 errors underneath are its source.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    #[error("cannot read the file")]
    Read(#[source] std::io::Error),
    /// Not definitions JSON: `file:line:col: why`.
    #[error("{}:{line}:{column}: {why}", .path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        why: String,
    },
    #[error("user '{user}'")]
    Hash {
        user: String,
        #[source]
        error: HashError,
    },
    #[error("user '{0}' has neither password_hash nor password")]
    NoPassword(String),
    #[error("permissions of user '{user}' in vhost '{vhost}': {error}")]
    Permission {
        user: String,
        vhost: String,
        error: Box<PermissionError>,
    },
    #[error(
        "topic permissions of user '{user}' in vhost '{vhost}' on exchange '{exchange}': {error}"
    )]
    TopicPermission {
        user: String,
        vhost: String,
        exchange: String,
        error: Box<PermissionError>,
    },
    /// The broker refused a connection to a vhost of the file, or one of its objects; `what`
    /// is like "exchange 'x' in vhost '/'" (empty for the connection).
    #[error("{what}{}{error}", if .what.is_empty() { "" } else { ": " })]
    Refused { what: String, error: AmqpError },
    #[error("loading {}", .path.display())]
    Kept {
        path: PathBuf,
        #[source]
        error: Box<DefinitionsError>,
    },
    #[error("creating {}", .path.display())]
    Create {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("writing {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

/// A `password_hash` RabbitMQ would not load.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("hashing algorithm '{0}' is not supported (use {SHA256} or {SHA512})")]
    Algorithm(String),
    #[error("password_hash is not base64")]
    NotBase64(#[source] base64::DecodeError),
    #[error("password_hash has {bytes} bytes, expected {expected} for {algorithm}")]
    Length {
        bytes: usize,
        expected: usize,
        algorithm: String,
    },
}

type Result<T, E = DefinitionsError> = std::result::Result<T, E>;

#[derive(Debug, Default, Deserialize)]
pub struct Definitions {
    #[serde(default)]
    pub users: Vec<UserDef>,
    #[serde(default)]
    pub vhosts: Vec<VhostDef>,
    #[serde(default)]
    pub permissions: Vec<PermissionDef>,
    #[serde(default)]
    pub topic_permissions: Vec<TopicPermissionDef>,
    #[serde(default)]
    pub exchanges: Vec<ExchangeDef>,
    #[serde(default)]
    pub queues: Vec<QueueDef>,
    #[serde(default)]
    pub bindings: Vec<BindingDef>,
    /// Read for `doctor`; the embedded broker has no policies and leaves them out.
    #[serde(default)]
    pub policies: Vec<PolicyDef>,
}

#[derive(Debug, Deserialize)]
pub struct UserDef {
    pub name: String,
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub hashing_algorithm: Option<String>,
    /// Not in RabbitMQ's format; accepted so hand-written files can give a plain password.
    #[serde(default)]
    pub password: Option<String>,
    /// `"administrator,impersonator"` as RabbitMQ 3.10 exports them, or a list as later
    /// versions do.
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
}

/// User tags from a comma-separated string or a list of strings.
fn tags<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        Text(String),
        List(Vec<String>),
    }
    let tags = match Tags::deserialize(deserializer)? {
        Tags::Text(text) => text.split(',').map(str::to_string).collect(),
        Tags::List(list) => list,
    };
    Ok(tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect())
}

#[derive(Debug, Deserialize)]
pub struct VhostDef {
    pub name: String,
}

/// A user's permissions in a vhost: regular expressions over queue and exchange names.
#[derive(Debug, Deserialize)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl PermissionDef {
    fn compile(&self) -> Result<Permission> {
        Permission::new(&self.vhost, &self.configure, &self.write, &self.read).map_err(|error| {
            DefinitionsError::Permission {
                user: self.user.clone(),
                vhost: self.vhost.clone(),
                error: Box::new(error),
            }
        })
    }
}

/// A user's topic permissions for one topic exchange: regular expressions over routing keys.
#[derive(Debug, Deserialize)]
pub struct TopicPermissionDef {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

impl TopicPermissionDef {
    fn compile(&self) -> Result<TopicPermission> {
        TopicPermission::new(&self.vhost, &self.exchange, &self.write, &self.read).map_err(
            |error| DefinitionsError::TopicPermission {
                user: self.user.clone(),
                vhost: self.vhost.clone(),
                exchange: self.exchange.clone(),
                error: Box::new(error),
            },
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct ExchangeDef {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct QueueDef {
    pub name: String,
    pub vhost: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct BindingDef {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct PolicyDef {
    pub name: String,
    pub vhost: String,
    pub pattern: String,
    #[serde(rename = "apply-to", default = "all")]
    pub apply_to: String,
    #[serde(default)]
    pub definition: serde_json::Map<String, Value>,
    #[serde(default)]
    pub priority: i64,
}

fn all() -> String {
    "all".to_string()
}

pub fn read_file(path: &Path) -> Result<Definitions> {
    let text = std::fs::read_to_string(path).map_err(DefinitionsError::Read)?;
    serde_json::from_str(&text).map_err(|e| DefinitionsError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        why: e.to_string(),
    })
}

impl Definitions {
    /// Adds the file's users and vhosts to a broker configuration (before the broker starts).
    pub fn configure(&self, mut config: BrokerConfig) -> Result<BrokerConfig> {
        for vhost in &self.vhosts {
            if vhost.name != "/" && !config.vhosts.contains(&vhost.name) {
                config.vhosts.push(vhost.name.clone());
            }
        }
        for def in &self.users {
            let password =
                match (&def.password, &def.password_hash) {
                    (Some(plain), _) => Password::Plain(plain.clone()),
                    (None, Some(hash)) => parse_hash(hash, def.hashing_algorithm.as_deref())
                        .map_err(|error| DefinitionsError::Hash {
                            user: def.name.clone(),
                            error,
                        })?,
                    (None, None) => return Err(DefinitionsError::NoPassword(def.name.clone())),
                };
            let mut user = User {
                name: def.name.clone(),
                password,
                loopback_only: def.name == "guest",
                permissions: Vec::new(),
                topic_permissions: Vec::new(),
                tags: def.tags.clone(),
            };
            for p in self.permissions.iter().filter(|p| p.user == def.name) {
                user.set_permission(p.compile()?);
            }
            for t in self.topic_permissions.iter().filter(|t| t.user == def.name) {
                user.set_topic_permission(t.compile()?);
            }
            config.users.retain(|u| u.name != def.name);
            config.users.push(user);
        }
        // Permissions of users the broker has already (guest) replace theirs in that vhost, as
        // `rabbitmqctl set_permissions` would.
        for p in &self.permissions {
            if self.users.iter().any(|u| u.name == p.user) {
                continue;
            }
            if let Some(user) = config.users.iter_mut().find(|u| u.name == p.user) {
                user.set_permission(p.compile()?);
            }
        }
        for t in &self.topic_permissions {
            if self.users.iter().any(|u| u.name == t.user) {
                continue;
            }
            if let Some(user) = config.users.iter_mut().find(|u| u.name == t.user) {
                user.set_topic_permission(t.compile()?);
            }
        }
        Ok(config)
    }

    /// Declares the file's exchanges, queues and bindings on a running broker.
    pub fn declare(&self, broker: &Broker) -> Result<()> {
        let mut sessions = std::collections::HashMap::new();
        let mut session = |vhost: &str| -> Result<u64> {
            if let Some(id) = sessions.get(vhost) {
                return Ok(*id);
            }
            let (id, _inbox) = broker
                .open_internal_connection(vhost, "definitions")
                .map_err(|error| DefinitionsError::Refused {
                    what: String::new(),
                    error,
                })?;
            sessions.insert(vhost.to_string(), id);
            Ok(id)
        };
        for x in &self.exchanges {
            let id = session(&x.vhost)?;
            broker
                .exchange_declare(
                    ChannelRef::internal(id),
                    ExchangeSpec {
                        name: x.name.clone(),
                        kind: x.kind.clone(),
                        passive: false,
                        durable: x.durable,
                        auto_delete: x.auto_delete,
                        internal: x.internal,
                        arguments: table(&x.arguments),
                    },
                )
                .map_err(|error| DefinitionsError::Refused {
                    what: format!("exchange '{}' in vhost '{}'", x.name, x.vhost),
                    error,
                })?;
        }
        for q in &self.queues {
            let id = session(&q.vhost)?;
            broker
                .queue_declare(
                    ChannelRef::internal(id),
                    QueueSpec {
                        name: q.name.clone(),
                        passive: false,
                        durable: q.durable,
                        exclusive: false,
                        auto_delete: q.auto_delete,
                        arguments: table(&q.arguments),
                    },
                )
                .map_err(|error| DefinitionsError::Refused {
                    what: format!("queue '{}' in vhost '{}'", q.name, q.vhost),
                    error,
                })?;
        }
        for b in &self.bindings {
            let id = session(&b.vhost)?;
            let arguments = table(&b.arguments);
            let spec = BindingSpec {
                source: &b.source,
                target: Target::named(&b.destination, b.destination_type == "exchange"),
                routing_key: &b.routing_key,
                arguments,
            };
            let result = broker.bind(ChannelRef::internal(id), spec);
            result.map_err(|error| DefinitionsError::Refused {
                what: format!(
                    "binding {} -> {} '{}' in vhost '{}'",
                    b.source, b.destination, b.routing_key, b.vhost
                ),
                error,
            })?;
        }
        // The definitions connections are done; queues and exchanges they made stay.
        for id in sessions.into_values() {
            broker.close_connection(id, "definitions loaded");
        }
        Ok(())
    }
}

/// The file in a data directory that keeps users, vhosts and permissions.
const KEPT: &str = "definitions.json";

/// The users, vhosts and permissions a data directory kept, if it has any.
pub fn load_kept(dir: &Path) -> Result<Option<Definitions>> {
    let path = dir.join(KEPT);
    if !path.exists() {
        return Ok(None);
    }
    match read_file(&path) {
        Ok(definitions) => Ok(Some(definitions)),
        Err(error) => Err(DefinitionsError::Kept {
            path,
            error: Box::new(error),
        }),
    }
}

/// Keeps a configuration's users (passwords salted and hashed as RabbitMQ does), vhosts and
/// permissions in the data directory, in RabbitMQ's definitions format. Written to a
/// temporary file and renamed, so a crash leaves the old file or the new one.
pub fn keep(config: &BrokerConfig, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|error| DefinitionsError::Create {
        path: dir.to_path_buf(),
        error,
    })?;
    let users: Vec<Value> = config
        .users
        .iter()
        .map(|u| {
            serde_json::json!({
                "name": u.name,
                "password_hash": password_hash(&u.password),
                "hashing_algorithm": hashing_algorithm(&u.password),
                "tags": u.tags.join(","),
            })
        })
        .collect();
    let mut vhosts = vec!["/".to_string()];
    vhosts.extend(config.vhosts.iter().cloned());
    let permissions: Vec<Value> = config
        .users
        .iter()
        .flat_map(|u| {
            u.permissions.iter().map(|p| {
                serde_json::json!({
                    "user": u.name,
                    "vhost": p.vhost,
                    "configure": p.configure.as_str(),
                    "write": p.write.as_str(),
                    "read": p.read.as_str(),
                })
            })
        })
        .collect();
    let topic_permissions: Vec<Value> = config
        .users
        .iter()
        .flat_map(|u| {
            u.topic_permissions.iter().map(|t| {
                serde_json::json!({
                    "user": u.name,
                    "vhost": t.vhost,
                    "exchange": t.exchange,
                    "write": t.write,
                    "read": t.read,
                })
            })
        })
        .collect();
    let document = serde_json::json!({
        "users": users,
        "vhosts": vhosts.iter().map(|v| serde_json::json!({ "name": v })).collect::<Vec<_>>(),
        "permissions": permissions,
        "topic_permissions": topic_permissions,
    });
    let text = serde_json::to_string_pretty(&document).expect("JSON values serialize");
    let path = dir.join(KEPT);
    let tmp = dir.join(format!("{KEPT}.tmp"));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write()
        .inspect_err(|_| {
            // Half a temporary file only takes room (the kept one is still whole).
            let _ = std::fs::remove_file(&tmp);
        })
        .map_err(|error| DefinitionsError::Write { path, error })
}

const SHA256: &str = "rabbit_password_hashing_sha256";
const SHA512: &str = "rabbit_password_hashing_sha512";

/// RabbitMQ's `password_hash`: base64 of a 4-byte salt and SHA-256(salt ++ password) (or
/// SHA-512, as loaded). A plain password gets a fresh random salt and SHA-256; a user without
/// a password keeps the empty hash.
pub fn password_hash(password: &Password) -> String {
    use sha2::{Digest, Sha256};
    let (salt, hash) = match password {
        Password::Sha256 { salt, hash } | Password::Sha512 { salt, hash } => (*salt, hash.clone()),
        Password::NoPassword => return String::new(),
        Password::Plain(plain) => {
            let salt: [u8; 4] = rand::random();
            let hash = Sha256::new()
                .chain_update(salt)
                .chain_update(plain.as_bytes())
                .finalize()
                .to_vec();
            (salt, hash)
        }
    };
    let mut bytes = salt.to_vec();
    bytes.extend(hash);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `hashing_algorithm` that goes with [`password_hash`].
fn hashing_algorithm(password: &Password) -> &'static str {
    match password {
        Password::Sha512 { .. } => SHA512,
        _ => SHA256,
    }
}

fn parse_hash(hash: &str, algorithm: Option<&str>) -> Result<Password, HashError> {
    let algorithm = algorithm.unwrap_or(SHA256);
    let length = match algorithm {
        SHA256 => 32,
        SHA512 => 64,
        other => return Err(HashError::Algorithm(other.to_string())),
    };
    // RabbitMQ loads an empty hash and lets no password log the user in.
    if hash.is_empty() {
        return Ok(Password::NoPassword);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(hash)
        .map_err(HashError::NotBase64)?;
    if bytes.len() != 4 + length {
        return Err(HashError::Length {
            bytes: bytes.len(),
            expected: 4 + length,
            algorithm: algorithm.to_string(),
        });
    }
    let salt = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let hash = bytes[4..].to_vec();
    Ok(if length == 32 {
        Password::Sha256 { salt, hash }
    } else {
        Password::Sha512 { salt, hash }
    })
}

/// JSON arguments as an AMQP field table (integers stay integers, as RabbitMQ stores them).
pub fn table(map: &serde_json::Map<String, Value>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in map {
        t.insert(k.as_str().into(), value(v));
    }
    t
}

fn value(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(value).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(table(map)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn errors_name_what_is_at_fault_and_keep_their_cause() {
        let defs: Definitions = serde_json::from_str(
            r#"{"users": [{"name": "u", "password_hash": "!!"}],
                "permissions": [{"user": "guest", "vhost": "/", "configure": "(",
                                 "write": "", "read": ""}]}"#,
        )
        .unwrap();
        let e = defs.configure(BrokerConfig::default()).unwrap_err();
        assert_eq!(e.to_string(), "user 'u'");
        assert_eq!(
            e.source().unwrap().to_string(),
            "password_hash is not base64"
        );
        let defs: Definitions = serde_json::from_str(
            r#"{"permissions": [{"user": "guest", "vhost": "/", "configure": "(",
                                 "write": "", "read": ""}]}"#,
        )
        .unwrap();
        let e = defs.configure(BrokerConfig::default()).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "permissions of user 'guest' in vhost '/': configure permission '(': "
            ),
            "{e}"
        );
        assert_eq!(
            parse_hash("", Some("md5")).unwrap_err().to_string(),
            format!("hashing algorithm 'md5' is not supported (use {SHA256} or {SHA512})")
        );
    }

    #[test]
    fn a_kept_file_that_does_not_load_says_which() {
        let dir = std::env::temp_dir().join(format!("rabbitscope-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(KEPT), "{ not json").unwrap();
        let e = load_kept(&dir).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            e.to_string(),
            format!("loading {}", dir.join(KEPT).display())
        );
        let cause = e.source().unwrap().to_string();
        assert!(
            cause.starts_with(&format!("{}:1:3: ", dir.join(KEPT).display())),
            "{cause}"
        );
    }

    #[test]
    fn rabbitmq_password_hashes_verify() {
        // Made with RabbitMQ's scheme: salt 0x908DC60A, SHA-256(salt ++ "test12").
        use sha2::{Digest, Sha256};
        let salt = [0x90, 0x8d, 0xc6, 0x0a];
        let mut bytes = salt.to_vec();
        bytes.extend(
            Sha256::new()
                .chain_update(salt)
                .chain_update(b"test12")
                .finalize(),
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let password = parse_hash(&encoded, None).unwrap();
        assert!(password.verify("test12"));
        assert!(!password.verify("test13"));
    }

    #[test]
    fn kept_users_have_hashed_passwords_that_still_verify() {
        let dir = std::env::temp_dir().join(format!("rabbitscope-kept-{}", std::process::id()));
        let config = BrokerConfig::default().with_vhost("orders");
        keep(&config, &dir).unwrap();
        let text = std::fs::read_to_string(dir.join(KEPT)).unwrap();
        assert!(text.contains("password_hash"));
        assert!(
            !text.contains("\"password\""),
            "no plain password on disk: {text}"
        );
        let kept = load_kept(&dir).unwrap().unwrap();
        let restored = kept.configure(BrokerConfig::default()).unwrap();
        let guest = restored.users.iter().find(|u| u.name == "guest").unwrap();
        assert!(matches!(guest.password, Password::Sha256 { .. }));
        assert!(guest.password.verify("guest") && !guest.password.verify("guest2"));
        assert!(guest.permission("orders").is_some());
        assert!(restored.vhosts.contains(&"orders".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// RabbitMQ's hash of `password` with `salt`, SHA-512 flavour, as an export holds it.
    fn sha512_export(salt: [u8; 4], password: &str) -> String {
        use sha2::{Digest, Sha512};
        let mut bytes = salt.to_vec();
        bytes.extend(
            Sha512::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize(),
        );
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn sha512_and_empty_hashes_load_as_rabbitmq_loads_them() {
        let sha512 = parse_hash(
            &sha512_export([1, 2, 3, 4], "s3cret"),
            Some("rabbit_password_hashing_sha512"),
        )
        .unwrap();
        assert!(sha512.verify("s3cret") && !sha512.verify("s3cre"));
        let none = parse_hash("", Some("rabbit_password_hashing_sha256")).unwrap();
        assert!(!none.verify("") && !none.verify("anything"));
        assert!(parse_hash("", Some("rabbit_password_hashing_md5")).is_err());
    }

    #[test]
    fn kept_permissions_and_hashes_come_back_exactly() {
        let given = serde_json::json!({
            "users": [
                { "name": "alice", "password": "a-pass" },
                { "name": "bob", "password_hash": "", "hashing_algorithm": SHA256 },
                { "name": "carol", "password_hash": sha512_export([9, 8, 7, 6], "c-pass"),
                  "hashing_algorithm": SHA512 },
            ],
            "vhosts": [{ "name": "sec-perm" }],
            "permissions": [
                { "user": "alice", "vhost": "sec-perm",
                  "configure": "^alice-.*", "write": "alice-|^amq\\.default$", "read": "" },
                { "user": "bob", "vhost": "sec-perm", "configure": "", "write": "", "read": "" },
                { "user": "carol", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*" },
                { "user": "guest", "vhost": "sec-perm", "configure": "^g", "write": "", "read": ".*" },
            ],
            "topic_permissions": [
                { "user": "alice", "vhost": "sec-perm", "exchange": "events",
                  "write": "^{username}\\.", "read": "" },
            ],
        });
        let given: Definitions = serde_json::from_value(given).unwrap();
        let config = given.configure(BrokerConfig::default()).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "rabbitscope-kept-permissions-{}",
            std::process::id()
        ));
        keep(&config, &dir).unwrap();
        let restored = load_kept(&dir)
            .unwrap()
            .unwrap()
            .configure(BrokerConfig::default())
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let patterns = |config: &BrokerConfig, user: &str, vhost: &str| {
            let u = config.users.iter().find(|u| u.name == user).unwrap();
            let p = u.permission(vhost).unwrap();
            (
                p.configure.as_str().to_string(),
                p.write.as_str().to_string(),
                p.read.as_str().to_string(),
            )
        };
        for (user, vhost) in [
            ("alice", "sec-perm"),
            ("bob", "sec-perm"),
            ("carol", "/"),
            ("guest", "sec-perm"),
            ("guest", "/"),
        ] {
            assert_eq!(
                patterns(&restored, user, vhost),
                patterns(&config, user, vhost),
                "{user} in {vhost}"
            );
        }
        assert_eq!(
            patterns(&restored, "alice", "sec-perm"),
            (
                "^alice-.*".to_string(),
                "alice-|^amq\\.default$".to_string(),
                String::new()
            )
        );
        let user = |name: &str| restored.users.iter().find(|u| u.name == name).unwrap();
        let topic = &user("alice").topic_permissions;
        assert_eq!(topic.len(), 1);
        assert_eq!(
            (
                topic[0].vhost.as_str(),
                topic[0].exchange.as_str(),
                topic[0].write.as_str(),
                topic[0].read.as_str()
            ),
            ("sec-perm", "events", "^{username}\\.", "")
        );
        assert!(user("alice").permission("/").is_none());
        assert!(user("alice").password.verify("a-pass"));
        assert!(matches!(user("bob").password, Password::NoPassword));
        assert!(matches!(user("carol").password, Password::Sha512 { .. }));
        assert!(user("carol").password.verify("c-pass"));
    }
}
