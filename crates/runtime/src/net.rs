//! Pod networking on the host: one Linux bridge, one network namespace and veth pair per pod.
//!
//! The process and microVM backends give every pod a network namespace `<prefix><short id>`
//! (bind-mounted under `/run/netns`, as `ip netns add` does) whose `eth0` is one end of a veth
//! pair; the host end is a port of the bridge ([`NetworkConfig::bridge`]). The bridge carries the
//! gateway address of every VPC subnet in use (`10.0.1.1/24`, `10.0.2.1/24`, ...), so pods of one
//! subnet talk over layer 2 and pods of different subnets through the host, as through the VPC
//! router. Inside the pod netns `169.254.169.254` is a `prohibit` route: Fargate has no instance
//! metadata service, and a pod must not reach one the host may have.
//!
//! Everything is done by running `ip` (iproute2) and `nft` as child processes: measured at about
//! 17 ms for the whole wiring of a pod, easy to reproduce by hand when debugging, and without a
//! netlink socket per namespace. `ip netns exec` is never used: it remounts `/sys` and hides the
//! cgroup v1 mounts from whatever it runs. Configuration inside a pod netns uses `ip -n`.
//!
//! # What this changes on the host, and why
//!
//! [`PodNetwork::ensure_gateway`] makes these changes, in this order:
//!
//! 1. The bridge is created (down, with a fixed locally administered MAC address derived from its
//!    name, so that the gateway's MAC address does not change when ports come and go and pods'
//!    ARP caches stay valid), the gateway address is added, and the bridge is brought up.
//! 2. An nftables table `inet localfargate-<bridge>` is installed (atomically replaced on every
//!    call). Its `forward` chain (hook forward, priority filter, policy **accept**, so traffic
//!    that does not touch the bridge is left to the host's own rules) accepts bridge → bridge,
//!    drops everything that enters on the bridge and would leave by another interface, accepts
//!    packets from elsewhere into the bridge only if they belong to a connection a pod or the host
//!    opened (`ct state established,related`) and drops the rest. The pods' subnets (the
//!    gateway addresses' networks) are kept in the set `pod_nets`.
//! 3. `net.ipv4.conf.<bridge>.send_redirects = 0`: the host routes between subnets like the VPC
//!    router and does not tell pods to bypass it.
//! 4. `net.ipv4.conf.<bridge>.forwarding = 1`, **not** `net.ipv4.ip_forward`. Linux decides
//!    whether to forward an IPv4 packet by the forwarding flag of the interface it *arrived* on,
//!    so only packets from pods are routed; the host still forwards nothing that arrives on its
//!    real interfaces, with or without the nft table. This is what cross-subnet pod traffic
//!    needs (10.0.1.5 → 10.0.2.7 enters and leaves by the bridge).
//!
//! With [`NetworkConfig::egress`] (opt-in, off by default) pods may reach the outside: the
//! forward chain also accepts packets from the bridge whose source is in `pod_nets`, a `nat`
//! `postrouting` chain masquerades `ip saddr @pod_nets oifname != <bridge>`, and, because the
//! replies arrive on a real interface, `net.ipv4.ip_forward` is set to 1 (after the table is in
//! place). Its previous value is saved in `/run/localfargate/ip_forward.before` (suffixed with
//! the network namespace's inode outside the host's namespace) and restored by
//! [`PodNetwork::teardown`] when no `localfargate-*` table is left. Setting `ip_forward` also sets
//! `accept_redirects` to 0 on all interfaces (kernel behaviour); restoring it sets them back.
//!
//! The bridge is made with `nf_call_iptables 1`: with `br_netfilter` (built in or loaded),
//! packets bridged between pods of one subnet pass the inet hooks, with connection tracking, so
//! the security groups' table ([`crate::firewall`]) sees them. The forward hook sees them with the
//! bridge as input and output interface and the guard table accepts them with its first rule.
//! Without `br_netfilter` pods of one subnet are not filtered from each other. Limitation: a host
//! whose own firewall drops forwarded packets (Docker sets the iptables `FORWARD` policy to DROP)
//! also drops cross-subnet pod traffic, since an accept in one base chain does not override a
//! drop in another.
//!
//! [`PodNetwork::teardown`] deletes the bridge (and so its sysctls) and the table.

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Mutex;

/// Where `ip netns add` bind-mounts named network namespaces (Debian builds iproute2 with
/// `/run/netns`; `/var/run` is a symlink to `/run`).
pub const NETNS_DIR: &str = "/run/netns";

/// The pod-side interface name.
const POD_IFACE: &str = "eth0";

/// The instance metadata address, unreachable in a Fargate pod.
const IMDS: &str = "169.254.169.254/32";

/// Prefix of the nft tables this module owns, one per bridge.
const TABLE_PREFIX: &str = "localfargate-";

/// Where the value of `net.ipv4.ip_forward` before egress turned it on is kept (tmpfs: a reboot
/// resets both the sysctl and the file).
const IP_FORWARD_SAVED: &str = "/run/localfargate/ip_forward.before";

/// Where this network namespace's `ip_forward` before egress is kept: `ip_forward` is per
/// network namespace, so a localfargate run in another one (a test's stand-in host) keeps its
/// own value; the host's namespace keeps the plain name.
fn ip_forward_saved() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::metadata("/proc/self/ns/net").map(|m| m.ino()).ok();
    let host = std::fs::metadata("/proc/1/ns/net").map(|m| m.ino()).ok();
    match (own, host) {
        (Some(own), Some(host)) if own != host => {
            PathBuf::from(format!("{IP_FORWARD_SAVED}.{own}"))
        }
        _ => PathBuf::from(IP_FORWARD_SAVED),
    }
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Linux interface names hold at most 15 bytes (IFNAMSIZ 16 with the NUL).
const IFNAMSIZ: usize = 15;

/// Sandbox ids up to this length made of `[a-z0-9-]` are used as they are; longer ones are
/// hashed to this many hex digits. Hashed ids are in the first set, so the mapping is idempotent
/// and [`PodNetwork::list`]'s short ids can be given back to [`PodNetwork::detach`].
const SHORT_ID_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The host bridge, e.g. `lfbr0` (at most 15 bytes of `[A-Za-z0-9_.-]`).
    pub bridge: String,
    /// Prefix of the pods' netns names, e.g. `lf-`.
    pub netns_prefix: String,
    /// Lets pods reach the outside through NAT. Off by default; see the module docs for what it
    /// changes on the host.
    pub egress: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bridge: "lfbr0".to_string(),
            netns_prefix: "lf-".to_string(),
            egress: false,
        }
    }
}

/// One pod's place on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAttachment {
    /// The sandbox id; may be long (interface and netns names are derived from a hash).
    pub id: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("unexpected output from `{command}`: {message}")]
    Output { command: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid pod network setting: {0}")]
    Invalid(String),
}

impl NetError {
    /// Whether a failed command's stderr says `text` (iproute2 and nft messages are stable
    /// strings such as "File exists" or "Cannot find device").
    pub(crate) fn says(&self, text: &str) -> bool {
        matches!(self, NetError::Command { stderr, .. } if stderr.contains(text))
    }
}

/// The pod network of one bridge. Cheap to share (`Arc`); calls may run concurrently.
#[derive(Debug)]
pub struct PodNetwork {
    config: NetworkConfig,
    /// Serializes bridge and table changes made by this process (concurrent `ensure_gateway`
    /// calls would otherwise race to create the bridge).
    host_lock: Mutex<()>,
}

impl PodNetwork {
    pub fn new(config: NetworkConfig) -> Self {
        PodNetwork {
            config,
            host_lock: Mutex::new(()),
        }
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The nft table guarding this bridge: `inet localfargate-<bridge>`.
    pub fn table_name(&self) -> String {
        format!("{TABLE_PREFIX}{}", self.config.bridge)
    }

    /// Idempotent: the bridge exists and is up and carries `gateway/prefix_len` (a bridge may
    /// carry several gateways, one per VPC subnet). Also installs the host guard (module docs).
    pub async fn ensure_gateway(&self, gateway: Ipv4Addr, prefix_len: u8) -> Result<(), NetError> {
        self.validate_config()?;
        if !(1..=30).contains(&prefix_len) {
            return Err(NetError::Invalid(format!(
                "gateway {gateway}/{prefix_len}: prefix length must be 1..=30"
            )));
        }
        let bridge = self.config.bridge.as_str();
        let _guard = self.host_lock.lock().await;

        let mut state = match self.bridge_state().await? {
            Some(state) => state,
            None => {
                let mac = bridge_mac(bridge);
                let created = run(
                    "ip",
                    &[
                        "link",
                        "add",
                        bridge,
                        "address",
                        &mac,
                        "type",
                        "bridge",
                        "nf_call_iptables",
                        "1",
                    ],
                    None,
                )
                .await;
                match created {
                    Ok(_) => tracing::info!(bridge, "created pod bridge"),
                    // Another process made it in between: fine.
                    Err(e) if e.says("File exists") => {}
                    Err(e) => return Err(e),
                }
                self.bridge_state().await?.ok_or_else(|| NetError::Output {
                    command: format!("ip -j addr show dev {bridge}"),
                    message: "the bridge is missing right after it was created".to_string(),
                })?
            }
        };

        if !state.addrs.contains(&(gateway, prefix_len)) {
            let cidr = format!("{gateway}/{prefix_len}");
            match run("ip", &["addr", "add", &cidr, "dev", bridge], None).await {
                Ok(_) => tracing::info!(bridge, gateway = %cidr, "added gateway address"),
                Err(e) if e.says("File exists") => {}
                Err(e) => return Err(e),
            }
            state.addrs.push((gateway, prefix_len));
        }

        // The guard goes in before anything can be forwarded.
        let nets: BTreeSet<(Ipv4Addr, u8)> = state
            .addrs
            .iter()
            .map(|&(addr, len)| (network(addr, len), len))
            .collect();
        let script = guard_ruleset(&self.table_name(), bridge, &nets, self.config.egress);
        run("nft", &["-f", "-"], Some(&script)).await?;

        let conf = Path::new("/proc/sys/net/ipv4/conf").join(bridge);
        write_sysctl(&conf.join("send_redirects"), "0").await?;
        write_sysctl(&conf.join("forwarding"), "1").await?;
        if self.config.egress {
            enable_ip_forward().await?;
        }

        if !state.up {
            run("ip", &["link", "set", bridge, "up"], None).await?;
        }
        Ok(())
    }

    /// Creates (or finds intact) the pod's netns and veth pair; returns the netns path for the
    /// OCI config. The pod side: `eth0` with `ip/prefix_len`, up, `lo` up, a default route via
    /// `gateway` and `prohibit 169.254.169.254/32`. Calling it again for the same id returns at
    /// once if all of that is in place, else removes what is there and starts over. Call
    /// [`ensure_gateway`](Self::ensure_gateway) for the pod's subnet first.
    pub async fn attach(&self, pod: &PodAttachment) -> Result<PathBuf, NetError> {
        self.validate_config()?;
        if !(1..=30).contains(&pod.prefix_len) {
            return Err(NetError::Invalid(format!(
                "pod {}: prefix length {} must be 1..=30",
                pod.id, pod.prefix_len
            )));
        }
        let short = short_id(&pod.id);
        let ns = self.netns_name(&short);
        let veth = self.host_veth(&short);
        let path = Path::new(NETNS_DIR).join(&ns);

        if path.exists() {
            if self.is_attached(&ns, &veth, pod).await? {
                tracing::debug!(netns = %ns, "pod network already attached");
                return Ok(path);
            }
            tracing::warn!(netns = %ns, "pod network half made; recreating it");
        }
        // Clears a stale veth or netns of an earlier, interrupted attach.
        self.remove(&ns, &veth).await?;

        run("ip", &["netns", "add", &ns], None).await?;
        if let Err(e) = self.wire(&ns, &veth, pod).await {
            if let Err(cleanup) = self.remove(&ns, &veth).await {
                tracing::warn!(netns = %ns, error = %cleanup, "cleanup after failed attach");
            }
            return Err(e);
        }
        tracing::info!(netns = %ns, veth = %veth, ip = %pod.ip, "pod network attached");
        Ok(path)
    }

    async fn wire(&self, ns: &str, veth: &str, pod: &PodAttachment) -> Result<(), NetError> {
        let bridge = &self.config.bridge;
        // The peer is created inside the netns under its final name: no rename step.
        // Hairpin on the port: with `br_netfilter` loaded, a packet a pod sends to a Service
        // that DNATs it back to the same pod is bridged straight back out of its own port
        // (the Service data path's hairpin), which a bridge refuses without it.
        let host = format!(
            "link add {veth} type veth peer name {POD_IFACE} netns {ns}\n\
             link set {veth} master {bridge} up\n\
             link set {veth} type bridge_slave hairpin on\n"
        );
        run("ip", &["-batch", "-"], Some(&host)).await?;
        let inside = format!(
            "addr add {ip}/{len} dev {POD_IFACE}\n\
             link set {POD_IFACE} up\n\
             link set lo up\n\
             route add default via {gw} dev {POD_IFACE}\n\
             route add prohibit {IMDS}\n",
            ip = pod.ip,
            len = pod.prefix_len,
            gw = pod.gateway,
        );
        run("ip", &["-n", ns, "-batch", "-"], Some(&inside)).await?;
        Ok(())
    }

    /// Whether the pod's wiring is complete and matches `pod`.
    async fn is_attached(
        &self,
        ns: &str,
        veth: &str,
        pod: &PodAttachment,
    ) -> Result<bool, NetError> {
        let host = match run_json("ip", &["-j", "link", "show", "dev", veth]).await {
            Ok(v) => v,
            Err(e) if e.says("does not exist") => return Ok(false),
            Err(e) => return Err(e),
        };
        let host_ok = first(&host).is_some_and(|link| {
            link["master"].as_str() == Some(self.config.bridge.as_str()) && has_flag(link, "UP")
        });
        if !host_ok {
            return Ok(false);
        }
        let links = match run_json("ip", &["-j", "-n", ns, "addr", "show"]).await {
            Ok(v) => v,
            // Not a mounted netns (half made).
            Err(NetError::Command { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let links = links.as_array().map(Vec::as_slice).unwrap_or_default();
        let named = |name: &str| links.iter().find(|l| l["ifname"].as_str() == Some(name));
        let lo_ok = named("lo").is_some_and(|l| has_flag(l, "UP"));
        let eth_ok = named(POD_IFACE)
            .is_some_and(|l| has_flag(l, "UP") && addrs_of(l).contains(&(pod.ip, pod.prefix_len)));
        if !(lo_ok && eth_ok) {
            return Ok(false);
        }
        let routes = run_json("ip", &["-j", "-n", ns, "route", "show"]).await?;
        let routes = routes.as_array().map(Vec::as_slice).unwrap_or_default();
        let gw = pod.gateway.to_string();
        let default_ok = routes.iter().any(|r| {
            r["dst"].as_str() == Some("default") && r["gateway"].as_str() == Some(gw.as_str())
        });
        let imds_ok = routes.iter().any(|r| {
            r["type"].as_str() == Some("prohibit")
                && r["dst"].as_str() == Some(IMDS.trim_end_matches("/32"))
        });
        Ok(default_ok && imds_ok)
    }

    /// Removes the pod's netns and veth. Idempotent (absent = Ok). Takes the sandbox id or the
    /// short id [`list`](Self::list) returns.
    pub async fn detach(&self, id: &str) -> Result<(), NetError> {
        self.validate_config()?;
        let short = short_id(id);
        let ns = self.netns_name(&short);
        let veth = self.host_veth(&short);
        self.remove(&ns, &veth).await?;
        tracing::info!(netns = %ns, "pod network detached");
        Ok(())
    }

    async fn remove(&self, ns: &str, veth: &str) -> Result<(), NetError> {
        // Deleting one end of a veth pair deletes both at once; deleting the netns alone would
        // leave the host end until the kernel's namespace cleanup ran.
        match run("ip", &["link", "del", veth], None).await {
            Ok(_) => {}
            Err(e) if e.says("Cannot find device") => {}
            Err(e) => return Err(e),
        }
        if Path::new(NETNS_DIR).join(ns).exists() {
            match run("ip", &["netns", "del", ns], None).await {
                Ok(_) => {}
                Err(e) if e.says("No such file") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `/run/netns/<prefix><short id>`.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        Path::new(NETNS_DIR).join(self.netns_name(&short_id(id)))
    }

    /// Short ids of the netns with our prefix (to find leftovers after a crash); each can be
    /// passed to [`detach`](Self::detach).
    pub async fn list(&self) -> Result<Vec<String>, NetError> {
        let mut dir = match tokio::fs::read_dir(NETNS_DIR).await {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(NetError::Io {
                    path: NETNS_DIR.into(),
                    source,
                });
            }
        };
        let mut ids = Vec::new();
        loop {
            let entry = dir.next_entry().await.map_err(|source| NetError::Io {
                path: NETNS_DIR.into(),
                source,
            })?;
            let Some(entry) = entry else { break };
            if let Some(short) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(self.config.netns_prefix.as_str()))
            {
                ids.push(short.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Detaches every pod with our netns prefix, then removes the bridge and the nft table, and
    /// restores `net.ipv4.ip_forward` if egress set it and no other localfargate table is left.
    /// Idempotent.
    pub async fn teardown(&self) -> Result<(), NetError> {
        self.validate_config()?;
        for short in self.list().await? {
            self.detach(&short).await?;
        }
        let _guard = self.host_lock.lock().await;
        let bridge = self.config.bridge.as_str();
        match run("ip", &["link", "del", bridge], None).await {
            Ok(_) => tracing::info!(bridge, "removed pod bridge"),
            Err(e) if e.says("Cannot find device") => {}
            Err(e) => return Err(e),
        }
        let table = self.table_name();
        match run("nft", &["delete", "table", "inet", &table], None).await {
            Ok(_) => {}
            Err(e) if e.says("No such file") => {}
            Err(e) => return Err(e),
        }
        crate::firewall::remove_all(bridge).await?;
        restore_ip_forward().await
    }

    fn netns_name(&self, short: &str) -> String {
        format!("{}{short}", self.config.netns_prefix)
    }

    /// `lfv` + 12 hex digits of a hash of the netns name: unique per pod and per netns prefix,
    /// and within IFNAMSIZ.
    fn host_veth(&self, short: &str) -> String {
        let hash = hex::encode(Sha256::digest(self.netns_name(short).as_bytes()));
        format!("lfv{}", &hash[..IFNAMSIZ - 3])
    }

    fn validate_config(&self) -> Result<(), NetError> {
        let NetworkConfig {
            bridge,
            netns_prefix,
            ..
        } = &self.config;
        let ifname_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= IFNAMSIZ
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        };
        if !ifname_ok(bridge) {
            return Err(NetError::Invalid(format!(
                "bridge name {bridge:?}: expected 1 to 15 characters of [A-Za-z0-9_.-]"
            )));
        }
        let prefix_ok = netns_prefix.len() <= 64
            && netns_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if netns_prefix.is_empty() || !prefix_ok {
            return Err(NetError::Invalid(format!(
                "netns prefix {netns_prefix:?}: expected 1 to 64 characters of [A-Za-z0-9_.-]"
            )));
        }
        Ok(())
    }

    /// The bridge's gateway addresses and whether it is up; `None` when it does not exist.
    async fn bridge_state(&self) -> Result<Option<BridgeState>, NetError> {
        let bridge = self.config.bridge.as_str();
        let v = match run_json("ip", &["-j", "addr", "show", "dev", bridge]).await {
            Ok(v) => v,
            Err(e) if e.says("does not exist") => return Ok(None),
            Err(e) => return Err(e),
        };
        let link = first(&v).ok_or_else(|| NetError::Output {
            command: format!("ip -j addr show dev {bridge}"),
            message: "no link in the output".to_string(),
        })?;
        Ok(Some(BridgeState {
            addrs: addrs_of(link),
            up: has_flag(link, "UP"),
        }))
    }
}

struct BridgeState {
    addrs: Vec<(Ipv4Addr, u8)>,
    up: bool,
}

/// The netns short name of a sandbox id: the id itself if it is at most 12 characters of
/// `[a-z0-9-]`, else the first 12 hex digits of its SHA-256. `short_id(short_id(x)) ==
/// short_id(x)`.
pub fn short_id(id: &str) -> String {
    let plain = !id.is_empty()
        && id.len() <= SHORT_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain {
        id.to_string()
    } else {
        hex::encode(Sha256::digest(id.as_bytes()))[..SHORT_ID_LEN].to_string()
    }
}

/// A locally administered unicast MAC address derived from the bridge name.
fn bridge_mac(bridge: &str) -> String {
    let hash = Sha256::digest(bridge.as_bytes());
    // 0x02: locally administered, unicast.
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        hash[0], hash[1], hash[2], hash[3], hash[4]
    )
}

fn network(addr: Ipv4Addr, len: u8) -> Ipv4Addr {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    Ipv4Addr::from(u32::from(addr) & mask)
}

/// The nft script that (re)installs the host guard of `bridge` in one transaction. Every chain
/// is added (a no-op if present) and flushed before its rules are added, so running it again
/// replaces the rules instead of appending.
pub fn guard_ruleset(
    table: &str,
    bridge: &str,
    pod_nets: &BTreeSet<(Ipv4Addr, u8)>,
    egress: bool,
) -> String {
    let t = format!("inet {table}");
    let br = format!("\"{bridge}\"");
    let mut s = String::new();
    s.push_str(&format!("add table {t}\n"));
    s.push_str(&format!(
        "add set {t} pod_nets {{ type ipv4_addr; flags interval; }}\nflush set {t} pod_nets\n"
    ));
    if !pod_nets.is_empty() {
        let elems: Vec<String> = pod_nets
            .iter()
            .map(|(net, len)| format!("{net}/{len}"))
            .collect();
        s.push_str(&format!(
            "add element {t} pod_nets {{ {} }}\n",
            elems.join(", ")
        ));
    }
    s.push_str(&format!(
        "add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}\n\
         flush chain {t} forward\n\
         add rule {t} forward iifname {br} oifname {br} accept\n"
    ));
    if egress {
        s.push_str(&format!(
            "add rule {t} forward iifname {br} ip saddr @pod_nets accept\n"
        ));
    }
    s.push_str(&format!(
        "add rule {t} forward iifname {br} drop\n\
         add rule {t} forward oifname {br} ct state established,related accept\n\
         add rule {t} forward oifname {br} drop\n"
    ));
    // The nat chain exists only with egress; add+flush+delete removes one left by an earlier
    // configuration without failing when there is none.
    s.push_str(&format!(
        "add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         flush chain {t} postrouting\n"
    ));
    if egress {
        s.push_str(&format!(
            "add rule {t} postrouting ip saddr @pod_nets oifname != {br} masquerade\n"
        ));
    } else {
        s.push_str(&format!("delete chain {t} postrouting\n"));
    }
    s
}

async fn write_sysctl(path: &Path, value: &str) -> Result<(), NetError> {
    tokio::fs::write(path, value)
        .await
        .map_err(|source| NetError::Io {
            path: path.to_path_buf(),
            source,
        })
}

async fn read_trimmed(path: &Path) -> Result<String, NetError> {
    tokio::fs::read_to_string(path)
        .await
        .map(|s| s.trim().to_string())
        .map_err(|source| NetError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Sets `net.ipv4.ip_forward = 1` for egress, saving the old value once.
async fn enable_ip_forward() -> Result<(), NetError> {
    let now = read_trimmed(Path::new(IP_FORWARD)).await?;
    if now == "1" {
        return Ok(());
    }
    let saved = ip_forward_saved();
    let saved = saved.as_path();
    if !saved.exists() {
        if let Some(dir) = saved.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| NetError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        tokio::fs::write(saved, &now)
            .await
            .map_err(|source| NetError::Io {
                path: saved.to_path_buf(),
                source,
            })?;
    }
    tracing::warn!("egress enabled: setting net.ipv4.ip_forward = 1 (was {now})");
    write_sysctl(Path::new(IP_FORWARD), "1").await
}

/// Puts back the `ip_forward` value saved by [`enable_ip_forward`] once no localfargate table
/// (no pod network on any bridge) is left.
async fn restore_ip_forward() -> Result<(), NetError> {
    let saved = ip_forward_saved();
    let saved = saved.as_path();
    let before = match tokio::fs::read_to_string(saved).await {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(NetError::Io {
                path: saved.to_path_buf(),
                source,
            });
        }
    };
    let tables = run("nft", &["list", "tables"], None).await?;
    let ours_left = tables.lines().any(|l| {
        l.split_whitespace()
            .nth(2)
            .is_some_and(|t| t.starts_with(TABLE_PREFIX))
    });
    if ours_left {
        return Ok(());
    }
    if before == "0" {
        tracing::info!("restoring net.ipv4.ip_forward = 0");
        write_sysctl(Path::new(IP_FORWARD), "0").await?;
    }
    tokio::fs::remove_file(saved)
        .await
        .map_err(|source| NetError::Io {
            path: saved.to_path_buf(),
            source,
        })
}

/// Runs `program args` (with `stdin` fed if given); returns stdout. A non-zero exit is
/// [`NetError::Command`] with the command line (and its input) and stderr.
pub(crate) async fn run(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, NetError> {
    let mut command = format!("{program} {}", args.join(" "));
    if let Some(input) = stdin {
        command.push_str(" <<< ");
        command.push_str(&input.trim_end().replace('\n', "; "));
    }
    tracing::debug!(%command, "running");
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| NetError::Spawn {
            command: command.clone(),
            source,
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .await
            .map_err(|source| NetError::Spawn {
                command: command.clone(),
                source,
            })?;
        // Dropping the pipe closes it: the command sees end of input.
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| NetError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetError::Command {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn run_json(program: &str, args: &[&str]) -> Result<Value, NetError> {
    let out = run(program, args, None).await?;
    serde_json::from_str(&out).map_err(|e| NetError::Output {
        command: format!("{program} {}", args.join(" ")),
        message: format!("not JSON: {e}"),
    })
}

fn first(v: &Value) -> Option<&Value> {
    v.as_array().and_then(|a| a.first())
}

fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(flag)))
}

/// IPv4 addresses of one link of `ip -j addr show` output.
fn addrs_of(link: &Value) -> Vec<(Ipv4Addr, u8)> {
    link["addr_info"]
        .as_array()
        .map(|infos| {
            infos
                .iter()
                .filter(|a| a["family"].as_str() == Some("inet"))
                .filter_map(|a| {
                    let ip = a["local"].as_str()?.parse().ok()?;
                    let len = u8::try_from(a["prefixlen"].as_u64()?).ok()?;
                    Some((ip, len))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_stable_short_and_idempotent() {
        assert_eq!(short_id("sb-1"), "sb-1");
        let long = short_id("default/very-long-pod-name-0123456789abcdef");
        assert_eq!(long.len(), SHORT_ID_LEN);
        assert_eq!(short_id(&long), long);
        assert_ne!(short_id("Upper"), "Upper");
        assert_ne!(short_id("a/b"), short_id("a/c"));
    }

    #[test]
    fn names_fit_ifnamsiz() {
        let net = PodNetwork::new(NetworkConfig::default());
        let veth = net.host_veth(&short_id("x"));
        assert_eq!(veth.len(), IFNAMSIZ);
        assert!(veth.starts_with("lfv"));
        assert_eq!(net.netns_path("sb-1"), Path::new("/run/netns/lf-sb-1"));
        // Different prefixes give different veths for the same id.
        let other = PodNetwork::new(NetworkConfig {
            netns_prefix: "t-".to_string(),
            ..NetworkConfig::default()
        });
        assert_ne!(other.host_veth("x"), net.host_veth("x"));
        assert_eq!(bridge_mac("lfbr0").len(), 17);
        assert!(bridge_mac("lfbr0").starts_with("02:"));
    }

    #[test]
    fn config_is_validated() {
        let bad = PodNetwork::new(NetworkConfig {
            bridge: "a-bridge-name-too-long".to_string(),
            ..NetworkConfig::default()
        });
        assert!(matches!(bad.validate_config(), Err(NetError::Invalid(_))));
        let bad = PodNetwork::new(NetworkConfig {
            netns_prefix: "../x".to_string(),
            ..NetworkConfig::default()
        });
        assert!(matches!(bad.validate_config(), Err(NetError::Invalid(_))));
        assert!(
            PodNetwork::new(NetworkConfig::default())
                .validate_config()
                .is_ok()
        );
    }

    #[test]
    fn networks_of_gateways() {
        assert_eq!(
            network("10.0.1.1".parse().unwrap(), 24),
            Ipv4Addr::new(10, 0, 1, 0)
        );
        assert_eq!(
            network("10.0.130.1".parse().unwrap(), 17),
            Ipv4Addr::new(10, 0, 128, 0)
        );
    }

    #[test]
    fn guard_without_egress_drops_everything_across_the_bridge_boundary() {
        let nets = BTreeSet::from([(Ipv4Addr::new(10, 0, 1, 0), 24)]);
        let s = guard_ruleset("localfargate-lfbr0", "lfbr0", &nets, false);
        assert!(s.contains("add element inet localfargate-lfbr0 pod_nets { 10.0.1.0/24 }"));
        assert!(s.contains("forward iifname \"lfbr0\" oifname \"lfbr0\" accept"));
        assert!(s.contains("forward iifname \"lfbr0\" drop"));
        assert!(s.contains("forward oifname \"lfbr0\" ct state established,related accept"));
        assert!(s.contains("forward oifname \"lfbr0\" drop"));
        assert!(!s.contains("masquerade"));
        assert!(!s.contains("ip saddr @pod_nets accept"));
        assert!(s.contains("delete chain inet localfargate-lfbr0 postrouting"));
        // The policy stays accept: unrelated forwarding is not this module's business.
        assert!(s.contains("policy accept"));
        assert!(!s.contains("policy drop"));
    }

    #[test]
    fn guard_with_egress_masquerades_pod_ranges() {
        let nets = BTreeSet::from([
            (Ipv4Addr::new(10, 0, 1, 0), 24),
            (Ipv4Addr::new(10, 0, 2, 0), 24),
        ]);
        let s = guard_ruleset("localfargate-lfbr0", "lfbr0", &nets, true);
        assert!(s.contains("pod_nets { 10.0.1.0/24, 10.0.2.0/24 }"));
        assert!(s.contains("forward iifname \"lfbr0\" ip saddr @pod_nets accept"));
        assert!(s.contains("postrouting ip saddr @pod_nets oifname != \"lfbr0\" masquerade"));
        assert!(!s.contains("delete chain"));
        // The accept for pods comes before the drop.
        let accept = s.find("ip saddr @pod_nets accept");
        let drop = s.find("forward iifname \"lfbr0\" drop");
        assert!(accept < drop);
    }

    #[test]
    fn parses_ip_json() {
        let v: Value = serde_json::from_str(
            r#"[{"ifindex":5,"ifname":"lfbr0","flags":["BROADCAST","UP"],"addr_info":[
                {"family":"inet","local":"10.0.1.1","prefixlen":24},
                {"family":"inet6","local":"fe80::1","prefixlen":64},
                {"family":"inet","local":"10.0.2.1","prefixlen":24}]}]"#,
        )
        .unwrap();
        let link = first(&v).unwrap();
        assert!(has_flag(link, "UP"));
        assert!(!has_flag(link, "LOWER_UP"));
        assert_eq!(
            addrs_of(link),
            vec![
                (Ipv4Addr::new(10, 0, 1, 1), 24),
                (Ipv4Addr::new(10, 0, 2, 1), 24)
            ]
        );
    }
}
