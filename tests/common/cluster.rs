//! A RabbitMQ cluster of three nodes on this machine, for the tests that watch one. It stands
//! beside the RabbitMQ on 5672 and never touches it: its nodes have names, ports, data, logs,
//! configuration and plugins of their own under a temporary directory, and an Erlang cookie of
//! their own, so no command sent to them can reach `rabbit@localhost`.
//!
//! [`cluster`] starts it once per test binary and hands it to one test at a time (a test may
//! stop a node). A watcher process, in a process group of its own, stops the nodes and removes
//! the directory once the test binary has exited, however it exits.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long a node may take to boot or to come back.
const BOOT: Duration = Duration::from_secs(180);

/// One node of the test cluster.
#[derive(Debug)]
pub struct ClusterNode {
    /// `rs-a-<pid>@localhost`.
    pub name: String,
    pub amqp_port: u16,
    pub management_port: u16,
    pub dist_port: u16,
}

impl ClusterNode {
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management_port)
    }
}

#[derive(Debug)]
pub struct Cluster {
    /// Its nodes' names, ports, data and logs, as this process sees the directory.
    pub dir: PathBuf,
    pub nodes: Vec<ClusterNode>,
    /// From the first `rabbitmq-server` to every node running in one cluster.
    pub started_in: Duration,
    /// RabbitMQ's scripts, as its nodes see them.
    bin: PathBuf,
    /// The chroot its RabbitMQ is installed in (see [`cluster_4`]), if not this machine's.
    root: Option<PathBuf>,
}

/// The test cluster, started on first use; None (after [`super::missing`]) where RabbitMQ is
/// not installed. The guard makes tests that use it take turns.
pub fn cluster() -> Option<MutexGuard<'static, Cluster>> {
    static CLUSTER: OnceLock<Option<Mutex<Cluster>>> = OnceLock::new();
    let cluster = CLUSTER
        .get_or_init(|| rabbitmq_bin().map(|bin| Mutex::new(Cluster::start(bin, None, "rs"))));
    match cluster {
        // A test that failed still restarted what it stopped (see `Stopped`).
        Some(c) => Some(c.lock().unwrap_or_else(|e| e.into_inner())),
        None => {
            super::missing("rabbitmq-server is not installed");
            None
        }
    }
}

/// A cluster of three RabbitMQ 4.0 nodes, from Debian trixie's packages in the chroot
/// `.ci/rabbitmq4` makes (`RABBITSCOPE_RABBITMQ4_ROOT`, by default /opt/rabbitmq4): this
/// machine's Debian has 3.10 only. Started on first use; None (after [`super::missing`])
/// where the chroot is not there.
pub fn cluster_4() -> Option<MutexGuard<'static, Cluster>> {
    static CLUSTER: OnceLock<Option<Mutex<Cluster>>> = OnceLock::new();
    let cluster = CLUSTER.get_or_init(|| {
        let root = std::env::var_os("RABBITSCOPE_RABBITMQ4_ROOT")
            .map_or_else(|| PathBuf::from("/opt/rabbitmq4"), PathBuf::from);
        let bin = PathBuf::from("/usr/lib/rabbitmq/bin");
        let installed = root.join("usr/lib/rabbitmq/bin/rabbitmq-server").exists()
            && root.join("proc/self").exists();
        installed.then(|| Mutex::new(Cluster::start(bin, Some(root), "r4")))
    });
    match cluster {
        Some(c) => Some(c.lock().unwrap_or_else(|e| e.into_inner())),
        None => {
            super::missing("no RabbitMQ 4 chroot with /proc mounted: run .ci/rabbitmq4");
            None
        }
    }
}

/// Where RabbitMQ's own scripts are: Debian's /usr/sbin ones are wrappers that switch to the
/// `rabbitmq` user and its cookie, which these nodes must not share.
fn rabbitmq_bin() -> Option<PathBuf> {
    let debian = Path::new("/usr/lib/rabbitmq/bin");
    if debian.join("rabbitmq-server").exists() {
        return Some(debian.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("rabbitmq-server").exists())
}

/// A runtime for the async parts of a cluster test (clients, `watch`'s source), which are
/// otherwise plain threads that wait on the nodes.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

impl Cluster {
    fn start(bin: PathBuf, root: Option<PathBuf>, prefix: &str) -> Cluster {
        let began = Instant::now();
        let pid = std::process::id();
        let dir = match &root {
            // Where its nodes can see it.
            Some(root) => root.join(format!("tmp/rabbitscope-cluster-{prefix}-{pid}")),
            None => std::env::temp_dir().join(format!("rabbitscope-cluster-{pid}")),
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make the cluster's directory");
        write_cookie(&dir);
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_management].\n").unwrap();
        // Instead of /etc/rabbitmq/rabbitmq-env.conf, which names the node on 5672: epmd and
        // the nodes' distribution on the loopback interface only.
        std::fs::write(
            dir.join("rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS=127.0.0.1\n\
             export ERL_FLAGS=\"-kernel inet_dist_use_interface {127,0,0,1}\"\n",
        )
        .unwrap();
        let nodes: Vec<ClusterNode> = ["a", "b", "c"]
            .iter()
            .map(|short| ClusterNode {
                name: format!("{prefix}-{short}-{pid}@localhost"),
                amqp_port: free_port(),
                management_port: free_port(),
                dist_port: free_port(),
            })
            .collect();
        let cluster = Cluster {
            dir,
            nodes,
            started_in: Duration::ZERO,
            bin,
            root,
        };
        cluster.watch_for_exit();
        for node in &cluster.nodes {
            cluster.start_node(node);
        }
        for node in &cluster.nodes {
            wait_for_port(node.management_port, &cluster.log_of(node));
        }
        let first = &cluster.nodes[0].name;
        for node in &cluster.nodes[1..] {
            cluster.ctl(&node.name, &["stop_app"]);
            cluster.ctl(&node.name, &["join_cluster", first]);
            cluster.ctl(&node.name, &["start_app"]);
        }
        cluster.await_running(cluster.nodes.len());
        Cluster {
            started_in: began.elapsed(),
            ..cluster
        }
    }

    /// `path` (under [`Cluster::dir`]) as the nodes see it.
    fn inside(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => Path::new("/").join(path.strip_prefix(root).unwrap()),
            None => path.to_path_buf(),
        }
    }

    fn node_dir(&self, node: &ClusterNode) -> PathBuf {
        let short = node.name.split('@').next().unwrap();
        self.dir.join(short)
    }

    fn log_of(&self, node: &ClusterNode) -> PathBuf {
        self.node_dir(node).join("log")
    }

    fn start_node(&self, node: &ClusterNode) {
        let home = self.node_dir(node);
        std::fs::create_dir_all(&home).unwrap();
        let config = home.join("rabbitmq.conf");
        std::fs::write(
            &config,
            format!(
                "listeners.tcp.local = 127.0.0.1:{}\n\
                 management.tcp.ip = 127.0.0.1\n\
                 management.tcp.port = {}\n\
                 loopback_users.guest = true\n",
                node.amqp_port, node.management_port
            ),
        )
        .unwrap();
        let status = self
            .command("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &node.name)
            .env("RABBITMQ_DIST_PORT", node.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.inside(&home.join("mnesia")))
            .env("RABBITMQ_LOG_BASE", self.inside(&self.log_of(node)))
            .env("RABBITMQ_CONFIG_FILE", self.inside(&config))
            .env(
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                self.inside(&home.join("advanced.config")),
            )
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.inside(&self.dir.join("enabled_plugins")),
            )
            .env("RABBITMQ_PID_FILE", self.inside(&home.join("pid")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run rabbitmq-server");
        assert!(
            status.success(),
            "rabbitmq-server -detached for {}",
            node.name
        );
    }

    /// One of RabbitMQ's scripts with this cluster's cookie and environment file.
    fn command(&self, script: &str) -> Command {
        let mut command = match &self.root {
            Some(root) => {
                let mut chroot = Command::new("chroot");
                chroot.arg(root).arg(self.bin.join(script));
                chroot
            }
            None => Command::new(self.bin.join(script)),
        };
        command
            .env("HOME", self.inside(&self.dir))
            .env(
                "RABBITMQ_CONF_ENV_FILE",
                self.inside(&self.dir.join("rabbitmq-env.conf")),
            )
            .env_remove("RABBITMQ_NODENAME")
            .stdin(Stdio::null());
        command
    }

    /// `rabbitmqctl -n NODE ARGS`; panics with its output if it fails.
    pub fn ctl(&self, node: &str, args: &[&str]) -> String {
        let out = self
            .command("rabbitmqctl")
            .arg("-n")
            .arg(node)
            .args(args)
            .output()
            .expect("run rabbitmqctl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "rabbitmqctl -n {node} {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// A process in a group of its own (a Ctrl-C to the tests does not reach it) that waits
    /// for this test binary to exit, then stops the nodes and removes their directory.
    fn watch_for_exit(&self) {
        let ctl = match &self.root {
            Some(root) => format!(
                "chroot '{}' '{}'",
                root.display(),
                self.bin.join("rabbitmqctl").display()
            ),
            None => format!("'{}'", self.bin.join("rabbitmqctl").display()),
        };
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             for n in {names}; do {ctl} -n \"$n\" stop >/dev/null 2>&1; done; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            names = names.join(" "),
            dir = self.dir.display(),
        );
        use std::os::unix::process::CommandExt;
        // Not waited for: it must outlive this process.
        #[allow(clippy::zombie_processes)]
        let _watcher = Command::new("sh")
            .env("HOME", self.inside(&self.dir))
            .env(
                "RABBITMQ_CONF_ENV_FILE",
                self.inside(&self.dir.join("rabbitmq-env.conf")),
            )
            .stdin(Stdio::null())
            .arg("-c")
            .arg(script)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the cluster's watcher");
    }

    /// Waits until the first node's management API lists `count` nodes running.
    pub fn await_running(&self, count: usize) {
        self.await_nodes(&format!("{count} nodes running"), |nodes| {
            nodes.iter().filter(|n| n["running"] == true).count() == count
        });
    }

    /// Waits until the first node's management API lists `node` running (others may be
    /// stopped still).
    pub fn await_node_running(&self, node: &ClusterNode) {
        self.await_nodes(&format!("{} running", node.name), |nodes| {
            (nodes.iter()).any(|n| n["name"] == node.name.as_str() && n["running"] == true)
        });
    }

    fn await_nodes(&self, what: &str, done: impl Fn(&[serde_json::Value]) -> bool) {
        let deadline = Instant::now() + BOOT;
        let api = self.nodes[0].management_port;
        loop {
            let nodes = get(api, "/api/nodes?columns=name,running")
                .ok()
                .and_then(|nodes| nodes.as_array().cloned());
            if nodes.as_deref().is_some_and(&done) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never had {what} (last: {nodes:?}); logs in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Stops RabbitMQ (not the Erlang node) on `node` until the guard is dropped.
    pub fn stop_app<'a>(&'a self, node: &'a ClusterNode) -> Stopped<'a> {
        self.ctl(&node.name, &["stop_app"]);
        Stopped {
            cluster: self,
            node,
        }
    }

    /// `rabbitmqctl -n NODE SET` now, `rabbitmqctl -n NODE RESTORE` when the guard is dropped.
    pub fn change<'a>(
        &'a self,
        node: &'a ClusterNode,
        set: &[&str],
        restore: &[&str],
    ) -> Changed<'a> {
        self.ctl(&node.name, set);
        Changed {
            cluster: self,
            node,
            restore: restore.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// A node stopped with `stop_app`; started again when dropped, a failing test too.
pub struct Stopped<'a> {
    cluster: &'a Cluster,
    node: &'a ClusterNode,
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.cluster.ctl(&self.node.name, &["start_app"]);
        self.cluster.await_node_running(self.node);
    }
}

/// A node's setting changed with `rabbitmqctl` (an alarm's threshold), set back when dropped.
pub struct Changed<'a> {
    cluster: &'a Cluster,
    node: &'a ClusterNode,
    restore: Vec<String>,
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        let args: Vec<&str> = self.restore.iter().map(String::as_str).collect();
        self.cluster.ctl(&self.node.name, &args);
    }
}

/// A cookie of the cluster's own, in the `HOME` its scripts are given.
fn write_cookie(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let cookie: String = (0..20)
        .map(|i| (b'A' + ((seed >> (i * 3)) as u8 ^ (i as u8 * 7)) % 26) as char)
        .collect();
    let path = dir.join(".erlang.cookie");
    std::fs::write(&path, cookie).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
}

/// Waits until something listens on `port`.
fn wait_for_port(port: u16, log: &Path) {
    let deadline = Instant::now() + BOOT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after {BOOT:?}; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A management API answer (guest/guest), as JSON.
pub fn get(port: u16, path: &str) -> std::io::Result<serde_json::Value> {
    serde_json::from_str(&get_text(port, path)?).map_err(std::io::Error::other)
}

/// A management API answer (guest/guest), as the API wrote it.
pub fn get_text(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or("").to_string(),
        ));
    }
    Ok(body.to_string())
}
