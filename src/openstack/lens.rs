//! Whose a connection or a queue is, in OpenStack words: `nova-compute@compute-1`, "compute-1's
//! compute topic queue", "reply queue of nova-api:13593".
//!
//! Learnt from what the broker shows, never guessed: a connection's service from its
//! `connection_name` (`<program>:<pid>:<uuid>`); a process's host from a server queue it
//! consumes or declared (`compute.compute-1`) or from a queue-manager name
//! (`reply_<host>:<process>:<n>`); a queue's owner from the connection that consumes or declared
//! it. What none of these says stays unknown. Pure: fed facts, asked questions.

use std::collections::{BTreeMap, HashMap};

use super::names::{queue_role, service, QueueRole};
use super::Oslo;
use crate::lesson::Lang;

/// One oslo.messaging process: a program and its process id. Its connections all run on one
/// host, so what one of them shows about the host holds for all.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Process {
    pub service: String,
    pub pid: String,
}

/// What is known of a connection or a queue's owner: its service, and its host when learnt.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Whose {
    pub service: Option<String>,
    pub host: Option<String>,
}

impl Whose {
    /// `nova-compute@compute-1`, `nova-api`; none when the service is unknown.
    pub fn label(&self) -> Option<String> {
        let service = self.service.as_deref()?;
        Some(match &self.host {
            Some(host) => format!("{service}@{host}"),
            None => service.to_string(),
        })
    }
}

/// A queue-manager id, `<host>:<process>:<n>`: oslo.messaging's stable stand-in for a uuid.
fn queue_manager_id(id: &str) -> Option<(&str, &str)> {
    let mut parts = id.splitn(3, ':');
    let (host, process, n) = (parts.next()?, parts.next()?, parts.next()?);
    let numbered = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    (!host.is_empty() && !process.is_empty() && numbered).then_some((host, process))
}

/// The host (and the process's name) a queue's own name gives: a server queue's server, a
/// queue-manager reply or fanout queue's host.
fn named_host(queue: &str) -> Option<(&str, Option<&str>)> {
    match queue_role(queue) {
        QueueRole::Server { server, .. } => Some((server, None)),
        QueueRole::Reply => {
            queue_manager_id(&queue["reply_".len()..]).map(|(host, process)| (host, Some(process)))
        }
        QueueRole::Fanout { .. } => {
            let (_, id) = queue.split_once("_fanout_")?;
            queue_manager_id(id).map(|(host, process)| (host, Some(process)))
        }
        _ => None,
    }
}

/// Where the view puts a queue or a client when it groups by service and host, in the order
/// groups are drawn: known services (a service's shared queues before its hosts'), hosts whose
/// service is unknown, the rest of oslo.messaging, notifications, then everything else.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Service {
        service: String,
        host: Option<String>,
    },
    Host(String),
    Unknown,
    Notifications,
    NotOslo,
}

impl Group {
    /// `nova-compute @ compute-1`, `nova-scheduler`, `not oslo.messaging`.
    pub fn label(&self, lang: Lang) -> String {
        let zh = lang == Lang::Zh;
        match self {
            Group::Service {
                service,
                host: Some(host),
            } => format!("{service} @ {host}"),
            Group::Service {
                service,
                host: None,
            } => service.clone(),
            Group::Host(host) if zh => format!("服务未知 @ {host}"),
            Group::Host(host) => format!("service unknown @ {host}"),
            Group::Unknown if zh => "oslo.messaging，服务未知".to_string(),
            Group::Unknown => "oslo.messaging, service unknown".to_string(),
            Group::Notifications if zh => "oslo.messaging 通知".to_string(),
            Group::Notifications => "oslo.messaging notifications".to_string(),
            Group::NotOslo if zh => "非 oslo.messaging".to_string(),
            Group::NotOslo => "not oslo.messaging".to_string(),
        }
    }

    fn of(whose: Whose) -> Group {
        match whose {
            Whose {
                service: Some(service),
                host,
            } => Group::Service { service, host },
            Whose {
                service: None,
                host: Some(host),
            } => Group::Host(host),
            _ => Group::Unknown,
        }
    }
}

/// What the lens knows, fed by [`Lens::connection`], [`Lens::consumes`], [`Lens::declared`].
#[derive(Clone, Debug, Default)]
pub struct Lens {
    processes: HashMap<u64, Process>,
    hosts: HashMap<Process, String>,
    /// Per queue, the connections that consume it or declared it (consumers first).
    owners: BTreeMap<String, Vec<u64>>,
}

/// A queue as the lens reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueView {
    /// Whose it is: a server queue's host and its consumers' service; a reply or fanout queue's
    /// process; a topic's shared queue's service (no one host).
    pub whose: Whose,
    /// The owning process as `nova-api:13593`, when a connection of it consumes or declared
    /// the queue.
    pub process: Option<String>,
    /// Whether it is oslo.messaging's at all.
    pub oslo: bool,
}

impl Lens {
    pub fn new() -> Lens {
        Lens::default()
    }

    /// A connection and its `connection_name`. Connections come first: a queue fed later
    /// teaches its connections' host.
    pub fn connection(&mut self, id: u64, connection_name: Option<&str>) {
        let Some(name) = connection_name else { return };
        let Some(program) = service(name) else { return };
        let pid = name[program.len() + 1..].split(':').next().unwrap_or("");
        let process = Process {
            service: program.to_string(),
            pid: pid.to_string(),
        };
        self.processes.insert(id, process);
    }

    /// Connection `id` consumes `queue`.
    pub fn consumes(&mut self, id: u64, queue: &str) {
        let owners = self.owners.entry(queue.to_string()).or_default();
        owners.retain(|c| *c != id);
        owners.insert(0, id);
        self.learn_host(queue, id);
    }

    /// Connection `id` declared `queue`.
    pub fn declared(&mut self, id: u64, queue: &str) {
        let owners = self.owners.entry(queue.to_string()).or_default();
        if !owners.contains(&id) {
            owners.push(id);
        }
        self.learn_host(queue, id);
    }

    /// A process's host is the one any queue of its connections names.
    fn learn_host(&mut self, queue: &str, id: u64) {
        if let (Some((host, _)), Some(process)) = (named_host(queue), self.processes.get(&id)) {
            self.hosts
                .entry(process.clone())
                .or_insert_with(|| host.to_string());
        }
    }

    /// The process behind a connection, if oslo.messaging's.
    pub fn process(&self, id: u64) -> Option<&Process> {
        self.processes.get(&id)
    }

    /// A connection's service and host.
    pub fn connection_whose(&self, id: u64) -> Whose {
        match self.processes.get(&id) {
            Some(p) => Whose {
                service: Some(p.service.clone()),
                host: self.hosts.get(p).cloned(),
            },
            None => Whose::default(),
        }
    }

    /// What the lens says of a queue.
    pub fn queue(&self, name: &str) -> QueueView {
        let owner =
            (self.owners.get(name).into_iter().flatten()).find_map(|c| self.processes.get(c));
        let owner_whose = owner.map(|p| Whose {
            service: Some(p.service.clone()),
            host: self.hosts.get(p).cloned(),
        });
        let process = owner.map(|p| format!("{}:{}", p.service, p.pid));
        let named = named_host(name);
        let (whose, oslo) = match queue_role(name) {
            QueueRole::Server { server, .. } => (
                Whose {
                    service: owner.map(|p| p.service.clone()),
                    host: Some(server.to_string()),
                },
                true,
            ),
            QueueRole::Reply | QueueRole::Fanout { .. } => (
                owner_whose.unwrap_or_else(|| Whose {
                    service: named.and_then(|(_, process)| process).map(str::to_string),
                    host: named.map(|(host, _)| host.to_string()),
                }),
                true,
            ),
            QueueRole::Notifications { .. } => (Whose::default(), true),
            // A topic's shared queue is consumed by every server of the topic: no one host.
            QueueRole::Other => match owner {
                Some(p) => (
                    Whose {
                        service: Some(p.service.clone()),
                        host: None,
                    },
                    true,
                ),
                None => (Whose::default(), self.is_topic(name)),
            },
        };
        QueueView {
            whose,
            process,
            oslo,
        }
    }

    /// What a queue is for and whose it is, in `lang`: `compute-1's compute topic queue`,
    /// `reply queue of nova-api:13593`; none for a queue not oslo.messaging's.
    pub fn purpose(&self, name: &str, lang: Lang) -> Option<String> {
        let view = self.queue(name);
        if !view.oslo {
            return None;
        }
        let zh = lang == Lang::Zh;
        // The process when a connection of it is known, else what the name says.
        let of = view.process.clone().or_else(|| view.whose.label());
        Some(match (queue_role(name), of) {
            (QueueRole::Server { topic, server }, _) if zh => {
                format!("{server} 的 {topic} 主题队列")
            }
            (QueueRole::Server { topic, server }, _) => format!("{server}'s {topic} topic queue"),
            (QueueRole::Reply, Some(of)) if zh => format!("{of} 的回复队列"),
            (QueueRole::Reply, Some(of)) => format!("reply queue of {of}"),
            (QueueRole::Reply, None) if zh => "回复队列（属主未知）".to_string(),
            (QueueRole::Reply, None) => "a reply queue, owner unknown".to_string(),
            (QueueRole::Fanout { topic }, Some(of)) if zh => format!("{of} 的 {topic} 广播队列"),
            (QueueRole::Fanout { topic }, Some(of)) => format!("{topic} fanout queue of {of}"),
            (QueueRole::Fanout { topic }, None) if zh => format!("{topic} 广播队列（属主未知）"),
            (QueueRole::Fanout { topic }, None) => {
                format!("{topic} fanout queue, owner unknown")
            }
            (QueueRole::Notifications { topic, priority }, _) if zh => {
                format!("{topic} 通知（{priority}）")
            }
            (QueueRole::Notifications { topic, priority }, _) => {
                format!("{priority} notifications ({topic})")
            }
            // `rabbit_stream_fanout`: one stream per topic, read by every server of it.
            (QueueRole::Other, _) if name.ends_with("_fanout") => {
                let topic = name.trim_end_matches("_fanout");
                if zh {
                    format!("{topic} 主题的广播流")
                } else {
                    format!("the {topic} topic's fanout stream")
                }
            }
            (QueueRole::Other, _) if zh => format!("{name} 主题的共享队列"),
            (QueueRole::Other, _) => format!("the {name} topic's shared queue"),
        })
    }

    /// The group a queue is shown in.
    pub fn queue_group(&self, name: &str) -> Group {
        let view = self.queue(name);
        match queue_role(name) {
            _ if !view.oslo => Group::NotOslo,
            QueueRole::Notifications { .. } => Group::Notifications,
            _ => Group::of(view.whose),
        }
    }

    /// The group a client is shown in.
    pub fn connection_group(&self, id: u64) -> Group {
        match self.processes.get(&id) {
            Some(_) => Group::of(self.connection_whose(id)),
            None => Group::NotOslo,
        }
    }

    /// Whether `name` is a topic some server queue or fanout queue the lens saw is of.
    fn is_topic(&self, name: &str) -> bool {
        self.owners.keys().any(|q| match queue_role(q) {
            QueueRole::Server { topic, .. } | QueueRole::Fanout { topic } => topic == name,
            _ => false,
        })
    }

    /// Makes queues known without an owner, so a topic's shared queue is told apart by its
    /// server queues even when no one consumes them yet.
    pub fn queue_seen(&mut self, name: &str) {
        self.owners.entry(name.to_string()).or_default();
    }
}

/// Calls seen, by `_msg_id`, so a reply can say which call it answers.
#[derive(Clone, Debug, Default)]
pub struct Calls {
    methods: HashMap<String, String>,
    order: std::collections::VecDeque<String>,
}

/// How many calls are remembered; a reply to an older one says only `reply`.
const CALLS_KEPT: usize = 4_096;

impl Calls {
    /// A call went out with `msg_id`.
    pub fn call(&mut self, msg_id: &str, method: &str) {
        if self.methods.len() == CALLS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.methods.remove(&old);
            }
        }
        if self
            .methods
            .insert(msg_id.to_string(), method.to_string())
            .is_none()
        {
            self.order.push_back(msg_id.to_string());
        }
    }

    /// The method of the call a reply with `msg_id` answers, if that call was seen.
    pub fn method(&self, msg_id: &str) -> Option<&str> {
        self.methods.get(msg_id).map(String::as_str)
    }

    /// What a body says, if an oslo.messaging message: its headline, naming the call a reply
    /// answers (`reply to select_destinations`), its method and kind. A call is remembered for
    /// its reply. Bodies without the envelope's key are not parsed at all.
    pub fn read(&mut self, body: &[u8]) -> Option<Said> {
        let key = b"\"oslo.message\"";
        if !body.windows(key.len()).any(|w| w == key) {
            return None;
        }
        Some(match super::decode(body)? {
            Oslo::Request(r) => {
                if let Some(call) = &r.call {
                    self.call(&call.msg_id, &r.method);
                }
                Said {
                    headline: r.headline(),
                    method: Some(r.method.clone()),
                    kind: r.kind(),
                }
            }
            Oslo::Reply(r) => {
                let method = r.msg_id.as_deref().and_then(|id| self.method(id));
                let headline = match method {
                    // `reply to x`, `reply to x failed: NoSuchMethod`, `reply to x heartbeat`
                    Some(m) => r.headline().replacen("reply", &format!("reply to {m}"), 1),
                    None => r.headline(),
                };
                Said {
                    headline,
                    method: method.map(str::to_string),
                    kind: "reply",
                }
            }
            // Its event type is what `method:` picks it by.
            Oslo::Notification(n) => Said {
                headline: n.headline(),
                method: Some(n.event_type),
                kind: "notification",
            },
        })
    }
}

/// What an oslo.messaging message says, in one line and in the fields a filter picks by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Said {
    /// `cast schedule_and_build_instances 1.17`, `reply to select_destinations`.
    pub headline: String,
    /// The method; a reply's is its call's, when that call was seen; a notification's, its
    /// event type.
    pub method: Option<String>,
    /// `call`, `cast`, `reply` or `notification`.
    pub kind: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPUTE: u64 = 1;
    const COMPUTE_REPLIES: u64 = 2;
    const API: u64 = 3;
    const PIKA: u64 = 4;

    fn nova() -> Lens {
        let mut lens = Lens::new();
        lens.connection(COMPUTE, Some("nova-compute:4242:0c3c387a"));
        lens.connection(COMPUTE_REPLIES, Some("nova-compute:4242:4784fe02"));
        lens.connection(API, Some("nova-api:13593:1ca4c61a"));
        lens.connection(PIKA, Some("orders"));
        lens
    }

    #[test]
    fn a_process_host_comes_from_the_server_queue_it_consumes() {
        let mut lens = nova();
        assert_eq!(
            lens.connection_whose(COMPUTE).label().unwrap(),
            "nova-compute"
        );
        lens.consumes(COMPUTE, "compute.node1");
        lens.consumes(COMPUTE_REPLIES, "reply_4f0c9ba5d1a64d0a");
        // Every connection of the process is on that host.
        for c in [COMPUTE, COMPUTE_REPLIES] {
            assert_eq!(
                lens.connection_whose(c).label().unwrap(),
                "nova-compute@node1"
            );
        }
        let q = lens.queue("compute.node1");
        assert_eq!(q.whose.label().unwrap(), "nova-compute@node1");
        assert_eq!(
            lens.purpose("compute.node1", Lang::En).unwrap(),
            "node1's compute topic queue"
        );
        assert_eq!(
            lens.purpose("reply_4f0c9ba5d1a64d0a", Lang::En).unwrap(),
            "reply queue of nova-compute:4242"
        );
        let reply = lens.queue("reply_4f0c9ba5d1a64d0a");
        assert_eq!(reply.process.as_deref(), Some("nova-compute:4242"));
        assert_eq!(reply.whose.label().unwrap(), "nova-compute@node1");
    }

    #[test]
    fn queue_manager_names_give_host_and_process() {
        let mut lens = nova();
        lens.declared(API, "reply_ctl-1:nova-api:1");
        assert_eq!(
            lens.connection_whose(API).label().unwrap(),
            "nova-api@ctl-1"
        );
        // Nobody known consumes this one: its name alone says whose it is.
        let q = lens.queue("scheduler_fanout_ctl-2:nova-scheduler:3");
        assert_eq!(q.whose.label().unwrap(), "nova-scheduler@ctl-2");
        assert_eq!(q.process, None);
        assert!(q.oslo);
    }

    #[test]
    fn unknown_stays_unknown() {
        let mut lens = nova();
        lens.consumes(COMPUTE_REPLIES, "reply_4f0c9ba5d1a64d0a");
        assert_eq!(
            lens.connection_whose(COMPUTE).host,
            None,
            "no server queue seen"
        );
        assert_eq!(lens.connection_whose(PIKA), Whose::default());
        // A server queue nobody is known to consume: its host, but no service.
        let q = lens.queue("compute.node9");
        assert_eq!(q.whose.service, None);
        assert_eq!(q.whose.host.as_deref(), Some("node9"));
        assert_eq!(q.whose.label(), None);
        // A queue of another program is not oslo.messaging's.
        lens.consumes(PIKA, "orders");
        assert_eq!(lens.purpose("orders", Lang::En), None);
        assert_eq!(
            lens.purpose("reply_00ff", Lang::En).unwrap(),
            "a reply queue, owner unknown"
        );
        let orders = lens.queue("orders");
        assert!(!orders.oslo);
        assert_eq!(orders.whose, Whose::default());
        // A uuid reply queue of an unseen process: oslo's, owner unknown.
        let reply = lens.queue("reply_00ff");
        assert!(reply.oslo);
        assert_eq!(reply.whose, Whose::default());
    }

    #[test]
    fn a_topic_shared_queue_has_a_service_and_no_host() {
        let mut lens = nova();
        lens.queue_seen("compute");
        assert!(!lens.queue("compute").oslo, "alone, `compute` is any name");
        lens.queue_seen("compute.node1");
        assert!(
            lens.queue("compute").oslo,
            "its server queue says it is a topic"
        );
        lens.consumes(COMPUTE, "compute.node1");
        lens.consumes(COMPUTE, "compute");
        let shared = lens.queue("compute");
        assert_eq!(shared.whose.service.as_deref(), Some("nova-compute"));
        assert_eq!(shared.whose.host, None);
    }

    #[test]
    fn groups_follow_service_and_host() {
        let mut lens = nova();
        lens.consumes(COMPUTE, "compute.node1");
        lens.consumes(COMPUTE, "compute");
        lens.consumes(PIKA, "orders");
        lens.queue_seen("notifications.info");
        let node1 = Group::Service {
            service: "nova-compute".into(),
            host: Some("node1".into()),
        };
        assert_eq!(lens.queue_group("compute.node1"), node1);
        assert_eq!(lens.connection_group(COMPUTE_REPLIES), node1);
        assert_eq!(lens.queue_group("compute").label(Lang::En), "nova-compute");
        assert_eq!(
            lens.queue_group("orders").label(Lang::En),
            "not oslo.messaging"
        );
        assert_eq!(lens.connection_group(PIKA), Group::NotOslo);
        assert_eq!(lens.queue_group("notifications.info"), Group::Notifications);
        assert_eq!(
            lens.queue_group("compute.node9").label(Lang::En),
            "service unknown @ node9"
        );
        let mut order = [
            Group::NotOslo,
            node1.clone(),
            lens.queue_group("compute"),
            Group::Unknown,
        ];
        order.sort();
        assert_eq!(order[..2], [lens.queue_group("compute"), node1]);
        assert_eq!(order[3], Group::NotOslo);
    }

    #[test]
    fn a_reply_names_the_call_it_answers() {
        let mut calls = Calls::default();
        calls.call("7c1e", "select_destinations");
        assert_eq!(calls.method("7c1e"), Some("select_destinations"));
        assert_eq!(calls.method("0000"), None, "a call not seen");
        for i in 0..CALLS_KEPT {
            calls.call(&i.to_string(), "object_action");
        }
        assert_eq!(calls.method("7c1e"), None, "the oldest is forgotten");
        assert_eq!(calls.method("1"), Some("object_action"));
    }

    #[test]
    fn a_reply_read_after_its_call_says_which_call() {
        let call = include_bytes!("../../tests/fixtures/oslo/call.json");
        // The call's own reply, as oslo.messaging sends it.
        let reply = br#"{"oslo.version": "2.0", "oslo.message": "{\"_msg_id\": \"0b9b09b208c24e52a5fc42e3e4ea230f\", \"failure\": null, \"result\": 1, \"ending\": true}"}"#;
        let mut calls = Calls::default();
        assert_eq!(
            calls.read(reply).unwrap().headline,
            "reply",
            "its call not seen"
        );
        let said = calls.read(call).unwrap();
        assert_eq!(
            (said.kind, said.method.as_deref()),
            ("call", Some("object_action"))
        );
        let said = calls.read(reply).unwrap();
        assert_eq!(said.headline, "reply to object_action");
        assert_eq!(
            (said.kind, said.method.as_deref()),
            ("reply", Some("object_action"))
        );
        assert_eq!(calls.read(b"plain text"), None);
    }
}
