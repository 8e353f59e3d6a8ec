//! How many web chat sessions one network address may start: each session can open a
//! conversation, which creates a contact and sends messages, so a script minting tokens
//! would otherwise fill the store. A token bucket per address (IPv6 per /64, because one
//! host commonly holds a whole /64): `per_minute` sessions at once, refilled evenly.

use async_trait::async_trait;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the sessions each address started are counted: in this process
/// ([`SessionLimit`]), or in a table that every instance of a server shares (on AWS,
/// `store::dynamodb::SharedSessionLimit`).
#[async_trait]
pub trait SessionCounter: Send + Sync {
    /// Takes one session for `address`, or says how long until one is free.
    async fn take(&self, address: IpAddr) -> Result<(), Duration>;
}

/// Addresses remembered at most; beyond it, buckets that are full again (they say nothing
/// a new bucket would not) are dropped first.
const ADDRESSES_MAX: usize = 10_000;

pub struct SessionLimit {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl SessionLimit {
    /// `per_minute` 0: no limit.
    pub fn new(per_minute: u32) -> SessionLimit {
        SessionLimit {
            per_minute,
            buckets: Mutex::default(),
        }
    }

    /// Takes one session for `address` at `now`, or says how long until one is free.
    pub fn take_at(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= ADDRESSES_MAX {
            buckets.retain(|_, b| b.refilled(now, per_second, capacity) < capacity);
            if buckets.len() >= ADDRESSES_MAX {
                // Every remembered address is still limited: forget all rather than grow.
                buckets.clear();
            }
        }
        let bucket = buckets.entry(network(address)).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        bucket.tokens = bucket.refilled(now, per_second, capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[async_trait]
impl SessionCounter for SessionLimit {
    async fn take(&self, address: IpAddr) -> Result<(), Duration> {
        self.take_at(address, Instant::now())
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, per_second: f64, capacity: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * per_second).min(capacity)
    }
}

/// The address a limit applies to: IPv4 as it is, IPv6 by its /64.
pub fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_waits_for_the_refill() {
        let limit = SessionLimit::new(3);
        let t0 = Instant::now();
        let a: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limit.take_at(a, t0), Ok(()));
        }
        let wait = limit.take_at(a, t0).unwrap_err();
        assert_eq!(wait.as_secs(), 20, "one session every 20 s at 3 a minute");
        // Others are not held back by it.
        assert_eq!(limit.take_at("203.0.113.10".parse().unwrap(), t0), Ok(()));
        assert_eq!(limit.take_at(a, t0 + Duration::from_secs(20)), Ok(()));
        assert!(limit.take_at(a, t0 + Duration::from_secs(20)).is_err());
    }

    #[test]
    fn ipv6_hosts_of_one_64_share_a_bucket() {
        let limit = SessionLimit::new(1);
        let t0 = Instant::now();
        assert_eq!(limit.take_at("2001:db8::1".parse().unwrap(), t0), Ok(()));
        assert!(limit.take_at("2001:db8::2".parse().unwrap(), t0).is_err());
        assert_eq!(
            limit.take_at("2001:db8:0:1::1".parse().unwrap(), t0),
            Ok(())
        );
    }

    #[test]
    fn zero_means_no_limit_and_memory_stays_bounded() {
        let open = SessionLimit::new(0);
        let a: IpAddr = "203.0.113.9".parse().unwrap();
        assert!((0..1000).all(|_| open.take_at(a, Instant::now()).is_ok()));
        let limit = SessionLimit::new(1);
        let t0 = Instant::now();
        for i in 0..(ADDRESSES_MAX as u32 + 10) {
            let _ = limit.take_at(IpAddr::V4(i.into()), t0);
        }
        assert!(limit.buckets.lock().unwrap().len() <= ADDRESSES_MAX);
    }
}
