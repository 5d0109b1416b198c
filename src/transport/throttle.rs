//! Who the client is (its address, through trusted proxies only) and how
//! fast it may ask: a token bucket per address for REST, a stricter one for
//! session creation, and the deadline of each request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::error::{ErrorBody, ErrorCode};
use axum::http::HeaderMap;

use super::error::ApiError;
use super::limits::{ConnectionPermit, LimitKind};
use super::rate_limit::TokenBucket;

/// The TCP peer of a request, put on every request by the listener. The
/// permit travels with it so that an upgraded WebSocket keeps its place;
/// `close` drops the connection (a handshake that never completes).
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub permit: Arc<ConnectionPermit>,
    pub close: Arc<tokio::sync::Notify>,
}

/// The client's address as this server trusts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client behind `peer`: the peer itself, unless it is a trusted proxy;
/// then the last address of `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded.iter().rev().find(|ip| !trusted.contains(ip)).or(forwarded.first()).copied().unwrap_or(peer)
}

/// Token buckets by address. Buckets that have refilled are forgotten, so
/// the map holds only addresses that asked recently.
pub struct Buckets {
    rate: f64,
    burst: f64,
    by_address: Mutex<HashMap<IpAddr, TokenBucket>>,
}

/// Forget refilled buckets once the map holds this many.
const PRUNE_AT: usize = 4096;

impl Buckets {
    /// `rate` per second, bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        Buckets { rate, burst, by_address: Mutex::new(HashMap::new()) }
    }

    /// Takes a token of `ip`'s bucket, or says how many ms until one is there.
    pub fn take(&self, ip: IpAddr) -> Result<(), u64> {
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PRUNE_AT {
            let now = Instant::now();
            map.retain(|_, bucket| !bucket.is_full(now));
        }
        map.entry(ip).or_insert_with(|| TokenBucket::new(self.rate, self.burst)).take()
    }

    /// How many addresses have a bucket.
    pub fn addresses(&self) -> usize {
        self.by_address.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The REST and session buckets and the request deadline.
pub struct Throttle {
    pub rest: Buckets,
    pub sessions: Buckets,
    pub trusted_proxies: Vec<IpAddr>,
    pub request_timeout: Duration,
}

pub fn rate_limited(kind: LimitKind, retry_after_ms: u64) -> ApiError {
    let what = if kind == LimitKind::SessionRate { "sessions created" } else { "requests" };
    ApiError(ErrorBody {
        code: ErrorCode::RateLimited,
        message: format!("too many {what} from your address; retry in {retry_after_ms} ms"),
        retry_after_ms: Some(retry_after_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let trusted = [proxy];
        let h = headers("198.51.100.7");
        assert_eq!(client_ip(stranger, &h, &trusted), stranger, "anyone can write the header");
        assert_eq!(client_ip(proxy, &h, &trusted), "198.51.100.7".parse::<IpAddr>().unwrap());
        // A client's own forged entry sits left of what the proxy appended.
        let h = headers("1.2.3.4, 198.51.100.7");
        assert_eq!(client_ip(proxy, &h, &trusted), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn buckets_are_per_address_and_forget_quiet_addresses() {
        let b = Buckets::new(1000.0, 2.0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(b.take(a).is_ok() && b.take(a).is_ok());
        assert!(b.take(a).is_err());
        assert!(b.take("10.0.0.2".parse().unwrap()).is_ok());
        for i in 0..PRUNE_AT as u32 {
            let _ = b.take(IpAddr::from(i.to_be_bytes()));
        }
        std::thread::sleep(Duration::from_millis(10));
        let _ = b.take("10.0.0.3".parse().unwrap());
        assert!(b.addresses() < PRUNE_AT, "refilled buckets were forgotten ({} left)", b.addresses());
    }
}
