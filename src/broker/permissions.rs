//! Who may do what in a vhost, as RabbitMQ's internal backend decides it.
//!
//! A user has, per vhost, three regular expressions (what `rabbitmqctl set_permissions` takes):
//! `configure` (declare and delete), `write` (publish to an exchange, bind to a queue or an
//! exchange) and `read` (get, consume, purge, bind from an exchange). A name is allowed when the
//! expression matches anywhere in it: RabbitMQ anchors nothing itself, and the empty string
//! means `^$`, which no queue or exchange name matches. The default exchange is checked under
//! the name `amq.default`. A user with no entry for a vhost may not open it.
//!
//! Topic permissions (`rabbitmqctl set_topic_permissions`) narrow that further for one topic
//! exchange: a publish's routing key must match `write`, a binding's key from it must match
//! `read`. `{username}` and `{vhost}` in them stand for the connection's user and vhost. A
//! user without topic permissions for an exchange is not limited by them.

use std::sync::Arc;

use regex::Regex;

use super::error::{AmqpError, AmqpResult};

/// The three kinds of permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

/// What a permission is checked on.
#[derive(Clone, Copy, Debug)]
pub enum Resource<'a> {
    Queue(&'a str),
    Exchange(&'a str),
}

/// One permission expression: the text as given (kept and saved unchanged) and compiled.
#[derive(Clone, Debug)]
pub struct Pattern {
    text: String,
    regex: Regex,
    /// `.*`, by far the most common: every publish checks it, so it skips the regex.
    everything: bool,
}

impl Pattern {
    /// Compiles `text`; the empty string matches nothing, as in RabbitMQ.
    pub fn new(text: &str) -> Result<Pattern, regex::Error> {
        let regex = Regex::new(if text.is_empty() { "^$" } else { text })?;
        Ok(Pattern {
            text: text.to_string(),
            regex,
            everything: text == ".*",
        })
    }

    /// `.*`: everything.
    pub fn all() -> Pattern {
        Pattern::new(".*").expect("a valid expression")
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, name: &str) -> bool {
        self.everything || self.regex.is_match(name)
    }
}

/// A permission whose regular expression does not compile: `which` is "configure", "write",
/// "read", "write topic" or "read topic", `pattern` the expression as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{which} permission '{pattern}': {why}")]
pub struct PermissionError {
    pub which: &'static str,
    pub pattern: String,
    pub why: String,
}

/// One user's permissions in one vhost.
#[derive(Clone, Debug)]
pub struct Permission {
    pub vhost: String,
    pub configure: Pattern,
    pub write: Pattern,
    pub read: Pattern,
}

impl Permission {
    /// Configure, write and read everything in `vhost` (`.*` three times).
    pub fn all(vhost: &str) -> Permission {
        Permission {
            vhost: vhost.to_string(),
            configure: Pattern::all(),
            write: Pattern::all(),
            read: Pattern::all(),
        }
    }

    /// Compiles the three expressions; the error names the one that is not valid.
    pub fn new(
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<Permission, PermissionError> {
        let compile = |which: &'static str, text: &str| {
            Pattern::new(text).map_err(|e| PermissionError {
                which,
                pattern: text.to_string(),
                why: e.to_string(),
            })
        };
        Ok(Permission {
            vhost: vhost.to_string(),
            configure: compile("configure", configure)?,
            write: compile("write", write)?,
            read: compile("read", read)?,
        })
    }

    fn pattern(&self, access: Access) -> &Pattern {
        match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        }
    }
}

/// One user's topic permissions for one topic exchange in one vhost. The expressions are
/// kept as text: they are compiled per connection, once `{username}` and `{vhost}` are known.
#[derive(Clone, Debug)]
pub struct TopicPermission {
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

impl TopicPermission {
    /// Checks that both expressions compile once filled in.
    pub fn new(
        vhost: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<Self, PermissionError> {
        let topic = TopicPermission {
            vhost: vhost.to_string(),
            exchange: exchange.to_string(),
            write: write.to_string(),
            read: read.to_string(),
        };
        for (which, text) in [("write topic", write), ("read topic", read)] {
            Pattern::new(&topic.fill(text, "user")).map_err(|e| PermissionError {
                which,
                pattern: text.to_string(),
                why: e.to_string(),
            })?;
        }
        Ok(topic)
    }

    /// `{username}` and `{vhost}` replaced as RabbitMQ does it: plain text, before compiling.
    fn fill(&self, text: &str, user: &str) -> String {
        text.replace("{username}", user)
            .replace("{vhost}", &self.vhost)
    }

    /// The compiled expressions for `user`; None when filling in made one invalid.
    fn expanded(&self, user: &str) -> Option<TopicGrant> {
        let fill = |text: &str| Pattern::new(&self.fill(text, user)).ok();
        Some(TopicGrant {
            exchange: self.exchange.clone(),
            write: fill(&self.write)?,
            read: fill(&self.read)?,
        })
    }
}

/// A topic permission ready for one connection.
#[derive(Clone, Debug)]
struct TopicGrant {
    exchange: String,
    write: Pattern,
    read: Pattern,
}

/// What one connection may do.
#[derive(Clone, Debug)]
pub enum Grant {
    /// The program's own connections (definitions, lessons, the view's actions): anything.
    Broker,
    /// A client that logged in as `user`, with its permissions in the connection's vhost.
    User(Arc<UserGrant>),
}

/// A logged-in user's permissions in the vhost of one connection (see [`Grant::user`]).
#[derive(Debug)]
pub struct UserGrant {
    user: String,
    permission: Permission,
    topics: Vec<TopicGrant>,
    /// The user has the `impersonator` tag: it may publish with any `user_id`.
    impersonator: bool,
}

impl Grant {
    /// What `user` may do in the vhost of `permission`, with its topic permissions there;
    /// an `impersonator` may publish with another user's `user_id`.
    pub fn user(
        user: &str,
        permission: Permission,
        topics: &[TopicPermission],
        impersonator: bool,
    ) -> Grant {
        let topics = topics
            .iter()
            .filter(|t| t.vhost == permission.vhost)
            .map(|t| {
                // An expression that filling in made invalid lets nothing through.
                t.expanded(user).unwrap_or_else(|| TopicGrant {
                    exchange: t.exchange.clone(),
                    write: Pattern::new("").expect("valid"),
                    read: Pattern::new("").expect("valid"),
                })
            })
            .collect();
        Grant::User(Arc::new(UserGrant {
            user: user.to_string(),
            permission,
            topics,
            impersonator,
        }))
    }

    /// A published message's `user_id` must name the user who logged in (unless it is an
    /// impersonator), as RabbitMQ checks it: 406 otherwise.
    pub fn check_user_id(&self, user_id: &str) -> AmqpResult<()> {
        let Grant::User(grant) = self else {
            return Ok(());
        };
        if grant.impersonator || grant.user == user_id {
            return Ok(());
        }
        Err(AmqpError::precondition_failed(format!(
            "user_id property set to '{user_id}' but authenticated user was '{}'",
            grant.user
        )))
    }

    /// Ok, or RabbitMQ's 403 naming the resource, its vhost and the user.
    pub fn check(&self, access: Access, resource: Resource<'_>) -> AmqpResult<()> {
        let Grant::User(grant) = self else {
            return Ok(());
        };
        let (user, permission) = (&grant.user, &grant.permission);
        let (kind, name) = match resource {
            Resource::Queue(name) => ("queue", name),
            Resource::Exchange("") => ("exchange", "amq.default"),
            Resource::Exchange(name) => ("exchange", name),
        };
        if permission.pattern(access).matches(name) {
            return Ok(());
        }
        Err(AmqpError::access_refused(format!(
            "access to {kind} '{name}' in vhost '{}' refused for user '{user}'",
            permission.vhost
        )))
    }

    /// The topic permission check for a routing key on topic exchange `exchange`: `Write` when
    /// publishing, `Read` when binding from it. Call it for topic exchanges only.
    pub fn check_topic(&self, access: Access, exchange: &str, routing_key: &str) -> AmqpResult<()> {
        let Grant::User(grant) = self else {
            return Ok(());
        };
        let Some(topic) = grant.topics.iter().find(|t| t.exchange == exchange) else {
            return Ok(());
        };
        let pattern = match access {
            Access::Write => &topic.write,
            Access::Read => &topic.read,
            Access::Configure => return Ok(()),
        };
        if pattern.matches(routing_key) {
            return Ok(());
        }
        Err(AmqpError::access_refused(format!(
            "access to topic '{routing_key}' in exchange '{exchange}' in vhost '{}' refused for user '{}'",
            grant.permission.vhost, grant.user
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(configure: &str, write: &str, read: &str) -> Grant {
        Grant::user(
            "alice",
            Permission::new("v", configure, write, read).unwrap(),
            &[],
            false,
        )
    }

    #[test]
    fn expressions_match_anywhere_unless_anchored() {
        let loose = grant("alice-", "alice-", "alice-");
        assert!(loose
            .check(Access::Configure, Resource::Queue("my-alice-q"))
            .is_ok());
        let anchored = grant("^alice-", "^alice-", "^alice-");
        assert!(anchored
            .check(Access::Configure, Resource::Queue("my-alice-q"))
            .is_err());
        assert!(anchored
            .check(Access::Configure, Resource::Queue("alice-q"))
            .is_ok());
    }

    #[test]
    fn the_empty_string_matches_nothing_and_the_default_exchange_is_amq_default() {
        let none = grant("", "", "");
        let refused = none
            .check(Access::Write, Resource::Exchange(""))
            .unwrap_err();
        assert_eq!(refused.code, 403);
        assert_eq!(
            refused.text,
            "ACCESS_REFUSED - access to exchange 'amq.default' in vhost 'v' refused for user 'alice'"
        );
        let default_only = grant("", "^amq\\.default$", "");
        assert!(default_only
            .check(Access::Write, Resource::Exchange(""))
            .is_ok());
        assert!(Grant::Broker
            .check(Access::Read, Resource::Queue("anything"))
            .is_ok());
    }

    #[test]
    fn the_text_is_kept_as_given() {
        let p = Permission::new("v", "", "^a.*", "x|y").unwrap();
        assert_eq!(
            (p.configure.as_str(), p.write.as_str(), p.read.as_str()),
            ("", "^a.*", "x|y")
        );
        assert!(Permission::new("v", "(", "", "").is_err());
    }

    #[test]
    fn topic_permissions_fill_in_the_user_and_vhost() {
        let topics = [
            TopicPermission::new("v", "events", "^{username}\\.", "^{vhost}\\.").unwrap(),
            TopicPermission::new("other", "events", "", "").unwrap(),
        ];
        let grant = Grant::user("alice", Permission::all("v"), &topics, false);
        assert!(grant
            .check_topic(Access::Write, "events", "alice.created")
            .is_ok());
        assert!(grant.check_topic(Access::Read, "events", "v.#").is_ok());
        let refused = grant
            .check_topic(Access::Write, "events", "bob.created")
            .unwrap_err();
        assert_eq!(
            refused.text,
            "ACCESS_REFUSED - access to topic 'bob.created' in exchange 'events' in vhost 'v' refused for user 'alice'"
        );
        // Other exchanges are not limited.
        assert!(grant.check_topic(Access::Write, "news", "bob.x").is_ok());
    }
}
