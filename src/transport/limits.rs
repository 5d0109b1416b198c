//! What one client may take of the server: connections in total, per
//! address and per user, and the count of every limit hit by kind, for
//! `/metrics` and `/api/stats`, so an operator can see an attack.

use std::collections::HashMap;
use std::fmt::Write;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Every limit the transports enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// REST requests of one address beyond its rate.
    RestRate,
    /// Sessions created by one address beyond its rate.
    SessionRate,
    /// TCP connections beyond `--max-connections`.
    Connections,
    /// TCP connections of one address beyond its limit.
    ConnectionsPerAddress,
    /// WebSockets of one user beyond its limit.
    SocketsPerUser,
    /// Request headers not complete in time (or an idle keep-alive).
    HeaderTimeout,
    /// A request (with its body) not received and answered in time.
    RequestTimeout,
    /// A WebSocket upgrade not completed in time.
    HandshakeTimeout,
    /// A socket upgrade of a user closed for flooding, while it cools down.
    Flooding,
    /// A socket opened by a page of an origin not allowed.
    ForeignOrigin,
}

impl LimitKind {
    pub const ALL: [LimitKind; 10] = [
        LimitKind::RestRate,
        LimitKind::SessionRate,
        LimitKind::Connections,
        LimitKind::ConnectionsPerAddress,
        LimitKind::SocketsPerUser,
        LimitKind::HeaderTimeout,
        LimitKind::RequestTimeout,
        LimitKind::HandshakeTimeout,
        LimitKind::Flooding,
        LimitKind::ForeignOrigin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LimitKind::RestRate => "rest_rate",
            LimitKind::SessionRate => "session_rate",
            LimitKind::Connections => "connections",
            LimitKind::ConnectionsPerAddress => "connections_per_address",
            LimitKind::SocketsPerUser => "sockets_per_user",
            LimitKind::HeaderTimeout => "header_timeout",
            LimitKind::RequestTimeout => "request_timeout",
            LimitKind::HandshakeTimeout => "handshake_timeout",
            LimitKind::Flooding => "flooding",
            LimitKind::ForeignOrigin => "foreign_origin",
        }
    }

    fn index(self) -> usize {
        LimitKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// How many of each a server, an address and a user may hold.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionCaps {
    pub total: usize,
    pub per_address: usize,
    pub sockets_per_user: usize,
}

/// Counts of held things by owner; an owner at zero is removed, so the map
/// only ever holds owners that hold something.
struct Holdings<K> {
    held: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Clone> Holdings<K> {
    fn new() -> Self {
        Holdings { held: Mutex::new(HashMap::new()) }
    }

    fn take(&self, owner: &K, cap: usize) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(owner.clone()).or_default();
        // With a cap of at least 1, an owner refused already holds some:
        // no empty entry is left behind.
        if *n >= cap.max(1) {
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, owner: &K) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(owner) {
            *n -= 1;
            if *n == 0 {
                held.remove(owner);
            }
        }
    }

    fn owners(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

pub struct Limits {
    caps: ConnectionCaps,
    hits: [AtomicU64; LimitKind::ALL.len()],
    open: AtomicU64,
    by_address: Holdings<IpAddr>,
    by_user: Holdings<Arc<str>>,
    /// Users closed for flooding, until when they may not reconnect.
    cooling: Mutex<HashMap<Arc<str>, Instant>>,
    /// Addresses exempt from the per-address cap (trusted proxies).
    exempt: Vec<IpAddr>,
}

/// A TCP connection admitted by [`Limits::admit`]; given back on drop.
pub struct ConnectionPermit {
    limits: Arc<Limits>,
    address: Option<IpAddr>,
}

/// A WebSocket admitted by [`Limits::open_socket`]; given back on drop.
pub struct SocketPermit {
    limits: Arc<Limits>,
    user: Arc<str>,
}

/// The counts `/api/stats` shows.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitStats {
    pub tcp_connections: u64,
    pub addresses: usize,
    pub limits_hit: HashMap<&'static str, u64>,
}

impl Limits {
    pub fn new(caps: ConnectionCaps, exempt: Vec<IpAddr>) -> Arc<Limits> {
        Arc::new(Limits {
            caps,
            hits: Default::default(),
            open: AtomicU64::new(0),
            by_address: Holdings::new(),
            by_user: Holdings::new(),
            cooling: Mutex::new(HashMap::new()),
            exempt,
        })
    }

    pub fn hit(&self, kind: LimitKind) {
        self.hits[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn hits(&self, kind: LimitKind) -> u64 {
        self.hits[kind.index()].load(Ordering::Relaxed)
    }

    /// Admits a TCP connection from `peer`, or names the limit it is over.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionPermit, LimitKind> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.caps.total as u64 {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.hit(LimitKind::Connections);
            return Err(LimitKind::Connections);
        }
        let address = (!self.exempt.contains(&peer)).then_some(peer);
        if let Some(address) = address
            && !self.by_address.take(&address, self.caps.per_address)
        {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.hit(LimitKind::ConnectionsPerAddress);
            return Err(LimitKind::ConnectionsPerAddress);
        }
        Ok(ConnectionPermit { limits: self.clone(), address })
    }

    /// Admits one more WebSocket of `user`, if the user is under the cap.
    pub fn open_socket(self: &Arc<Self>, user: &Arc<str>) -> Option<SocketPermit> {
        if self.by_user.take(user, self.caps.sockets_per_user) {
            Some(SocketPermit { limits: self.clone(), user: user.clone() })
        } else {
            self.hit(LimitKind::SocketsPerUser);
            None
        }
    }

    /// Keeps `user` from opening sockets for `period`.
    pub fn cool_down(&self, user: &Arc<str>, period: Duration) {
        let mut cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        cooling.retain(|_, until| *until > now);
        cooling.insert(user.clone(), now + period);
    }

    /// How long `user` must still wait before opening a socket, if at all.
    pub fn cooling_down(&self, user: &Arc<str>) -> Option<Duration> {
        let cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        let wait = cooling.get(user)?.checked_duration_since(Instant::now())?;
        self.hit(LimitKind::Flooding);
        Some(wait)
    }

    pub fn stats(&self) -> LimitStats {
        LimitStats {
            tcp_connections: self.open.load(Ordering::Relaxed),
            addresses: self.by_address.owners(),
            limits_hit: LimitKind::ALL.iter().map(|k| (k.name(), self.hits(*k))).collect(),
        }
    }

    /// The Prometheus lines of these counters.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP roomcast_tcp_connections Open TCP connections.");
        let _ = writeln!(out, "# TYPE roomcast_tcp_connections gauge");
        let _ = writeln!(out, "roomcast_tcp_connections {}", self.open.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP roomcast_limits_hit_total Requests and connections refused or cut by a limit.");
        let _ = writeln!(out, "# TYPE roomcast_limits_hit_total counter");
        for kind in LimitKind::ALL {
            let _ = writeln!(out, "roomcast_limits_hit_total{{kind=\"{}\"}} {}", kind.name(), self.hits(kind));
        }
        out
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(address) = &self.address {
            self.limits.by_address.give_back(address);
        }
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        self.limits.by_user.give_back(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize) -> Arc<Limits> {
        Limits::new(ConnectionCaps { total, per_address, sockets_per_user: 2 }, vec!["10.0.0.9".parse().unwrap()])
    }

    #[test]
    fn connections_are_capped_per_address_and_in_total_and_given_back() {
        let l = limits(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = l.admit(a).expect("first");
        let _a2 = l.admit(a).expect("second");
        assert_eq!(l.admit(a).err(), Some(LimitKind::ConnectionsPerAddress));
        let _b1 = l.admit(b).expect("another address");
        assert_eq!(l.admit(b).err(), Some(LimitKind::Connections));
        drop(a1);
        assert!(l.admit(b).is_ok(), "a closed connection frees its place");
        assert_eq!(l.hits(LimitKind::ConnectionsPerAddress), 1);
        assert_eq!(l.hits(LimitKind::Connections), 1);
    }

    #[test]
    fn a_trusted_proxy_is_not_capped_per_address_and_idle_addresses_are_forgotten() {
        let l = limits(10, 1);
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| l.admit(proxy).expect("proxy")).collect();
        assert_eq!(l.stats().addresses, 0);
        drop(held);
        let a = l.admit("10.0.0.1".parse().unwrap()).expect("one");
        assert_eq!(l.stats().addresses, 1);
        drop(a);
        assert_eq!(l.stats().addresses, 0);
        assert_eq!(l.stats().tcp_connections, 0);
    }

    #[test]
    fn sockets_are_capped_per_user() {
        let l = limits(10, 10);
        let alice: Arc<str> = "u_alice".into();
        let s1 = l.open_socket(&alice).expect("one");
        let _s2 = l.open_socket(&alice).expect("two");
        assert!(l.open_socket(&alice).is_none());
        assert!(l.open_socket(&"u_bob".into()).is_some());
        drop(s1);
        assert!(l.open_socket(&alice).is_some());
        assert_eq!(l.hits(LimitKind::SocketsPerUser), 1);
    }
}
