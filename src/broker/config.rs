//! Who may log in and what the broker is given at start: users with their passwords and
//! permissions, vhosts, limits, the data directory. Plain data; it may import only the
//! broker's permission types and the release it behaves as.

use std::path::PathBuf;

use super::{Behaviour, Permission, TopicPermission};

/// How a user's password is kept.
#[derive(Clone, Debug)]
pub enum Password {
    Plain(String),
    /// RabbitMQ's `password_hash`: a 4-byte salt followed by SHA-256(salt ++ password).
    Sha256 {
        salt: [u8; 4],
        hash: Vec<u8>,
    },
    /// The same with SHA-512 (`rabbit_password_hashing_sha512`).
    Sha512 {
        salt: [u8; 4],
        hash: Vec<u8>,
    },
    /// An empty `password_hash`: no password logs this user in, as in RabbitMQ.
    NoPassword,
}

impl Password {
    pub fn verify(&self, given: &str) -> bool {
        match self {
            Password::Plain(p) => p == given,
            Password::Sha256 { salt, hash } => salted_hash_is::<sha2::Sha256>(salt, given, hash),
            Password::Sha512 { salt, hash } => salted_hash_is::<sha2::Sha512>(salt, given, hash),
            Password::NoPassword => false,
        }
    }
}

/// Whether `hash` is the digest of `salt` followed by the password `given`.
fn salted_hash_is<D: sha2::Digest>(salt: &[u8], given: &str, hash: &[u8]) -> bool {
    D::new()
        .chain_update(salt)
        .chain_update(given.as_bytes())
        .finalize()
        .as_slice()
        == hash
}

/// A user who may log in.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password: Password,
    /// Like RabbitMQ's guest: refused unless the client connects from loopback.
    pub loopback_only: bool,
    /// What the user may do, per vhost; a vhost without an entry may not be opened.
    pub permissions: Vec<Permission>,
    /// Routing keys the user may publish with and bind with, per topic exchange and vhost.
    pub topic_permissions: Vec<TopicPermission>,
    /// RabbitMQ's user tags (`administrator`, `impersonator`, ...); only `impersonator`
    /// changes what the embedded broker allows.
    pub tags: Vec<String>,
}

impl User {
    /// The user's permission in `vhost`, if it has one.
    pub fn permission(&self, vhost: &str) -> Option<&Permission> {
        self.permissions.iter().find(|p| p.vhost == vhost)
    }

    /// Sets the user's permission in its vhost, replacing what it had there.
    pub fn set_permission(&mut self, permission: Permission) {
        self.permissions.retain(|p| p.vhost != permission.vhost);
        self.permissions.push(permission);
    }

    /// Sets the user's topic permission for its exchange and vhost, replacing what it had.
    pub fn set_topic_permission(&mut self, topic: TopicPermission) {
        self.topic_permissions
            .retain(|t| (&t.vhost, &t.exchange) != (&topic.vhost, &topic.exchange));
        self.topic_permissions.push(topic);
    }
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Vhosts besides `/`.
    pub vhosts: Vec<String>,
    pub users: Vec<User>,
    pub event_capacity: usize,
    /// Where durable things are kept (see [`store`](super::store)); None keeps nothing on disk.
    pub data_dir: Option<PathBuf>,
    /// The memory alarm: when what the broker holds for its clients takes more than this many
    /// bytes, publishing connections are blocked until it takes less, as RabbitMQ does at its
    /// memory high watermark. Counted: messages in queues and delivered but not acked (bodies
    /// plus [`MESSAGE_OVERHEAD`](super::MESSAGE_OVERHEAD) each), bodies still arriving, frames waiting to be written.
    /// None: never.
    pub memory_limit: Option<usize>,
    /// The disk alarm: while the data directory's filesystem has less than this many bytes
    /// free, or the store cannot write, publishing connections are blocked, as RabbitMQ does
    /// below its `disk_free_limit`. None (or no data directory): never.
    pub disk_free_limit: Option<u64>,
    /// The RabbitMQ release the broker behaves as, and its deprecated features' switches.
    pub behaviour: Behaviour,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            vhosts: Vec::new(),
            users: vec![User {
                name: "guest".into(),
                password: Password::Plain("guest".into()),
                loopback_only: true,
                permissions: vec![Permission::all("/")],
                topic_permissions: Vec::new(),
                tags: vec!["administrator".into()],
            }],
            event_capacity: crate::events::DEFAULT_CAPACITY,
            data_dir: None,
            memory_limit: None,
            disk_free_limit: None,
            behaviour: Behaviour::default(),
        }
    }
}

impl BrokerConfig {
    /// Adds a vhost and gives guest every permission there (`.*`), as the embedded broker's
    /// guest has on every vhost it is given.
    pub fn with_vhost(mut self, name: &str) -> Self {
        if name != "/" && !self.vhosts.iter().any(|v| v == name) {
            self.vhosts.push(name.to_string());
            for user in &mut self.users {
                if user.name == "guest" && user.permission(name).is_none() {
                    user.permissions.push(Permission::all(name));
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Password;

    fn bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn salted_hashes_match_only_their_password() {
        let salt = [1, 2, 3, 4];
        let sha256 = Password::Sha256 {
            salt,
            hash: bytes("307d90cdb5884533375959fba551782b1d36a4b4b0445d0104dc63a5ecdcf333"),
        };
        let sha512 = Password::Sha512 {
            salt,
            hash: bytes(concat!(
                "f8531f62f91c6601d4b58eae7f98a6fb90995397286aa0b2e88944865320b468",
                "12f6e5489a3f580b329b72194dfb9a21a2b9291da8e4ac057d3bfa2acc5f3081"
            )),
        };
        for password in [sha256, sha512] {
            assert!(password.verify("secret"));
            assert!(!password.verify("Secret"));
        }
    }
}
