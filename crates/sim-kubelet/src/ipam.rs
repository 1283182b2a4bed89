//! Pod IP allocation: a pure, in-memory allocator over the pod CIDR.
//!
//! The first /24 of the CIDR belongs to the host (the gateway `10.244.0.1` lives there), so addresses are
//! handed out from the second /24 upward (`10.244.1.1`, `10.244.1.2`, ...), never the network or broadcast
//! address. Allocation is next-fit, like CNI's host-local plugin: it continues after the last address handed
//! out and wraps around, so a just-released address is not reused at once (a client still holding a
//! connection to the old pod must not reach a new one). Each address records its owner (the pod UID), which
//! makes allocation idempotent per pod and lets a restarted sim-kubelet rebuild the table from the pods'
//! `status.podIP`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 CIDR such as `10.244.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodCidr {
    network: u32,
    prefix: u8,
}

/// Why a CIDR string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid pod CIDR {0:?}: expected an IPv4 network like 10.244.0.0/16 with a prefix of /8 to /30"
)]
pub struct CidrError(String);

impl FromStr for PodCidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        if !(8..=30).contains(&prefix) {
            return Err(err());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Self {
            network: u32::from(addr) & mask,
            prefix,
        })
    }
}

impl fmt::Display for PodCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

impl PodCidr {
    fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
    /// Whether `ip` lies inside the CIDR.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        n >= self.network && u64::from(n - self.network) < self.size()
    }
    /// First and last address that may be handed out to pods (inclusive).
    fn pool(&self) -> (u32, u32) {
        let broadcast = self.network + (self.size() - 1) as u32;
        // Skip the host's /24 when the CIDR is big enough to have more than one; a tiny CIDR only loses its
        // network address and the gateway (`.1`).
        let first = if self.size() >= 512 {
            self.network + 256 + 1
        } else {
            self.network + 2
        };
        (first, broadcast - 1)
    }
}

/// Allocation failures; none of them panics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    /// Every address of the pool is taken.
    #[error("pod CIDR {0} is exhausted")]
    Exhausted(PodCidr),
    /// The address lies outside the pool (or is reserved).
    #[error("{ip} is not an assignable pod address in {cidr}")]
    OutOfPool {
        /// The address asked for.
        ip: Ipv4Addr,
        /// The pool's CIDR.
        cidr: PodCidr,
    },
    /// The address is already held by another pod.
    #[error("{ip} is already held by pod {owner}")]
    Taken {
        /// The address asked for.
        ip: Ipv4Addr,
        /// The UID of the pod holding it.
        owner: String,
    },
}

/// The allocator: who holds which address.
#[derive(Debug)]
pub struct IpAllocator {
    cidr: PodCidr,
    by_ip: BTreeMap<u32, String>,
    by_owner: HashMap<String, u32>,
    /// The last address handed out; the next search starts after it.
    cursor: u32,
}

impl IpAllocator {
    /// An empty allocator over `cidr`.
    pub fn new(cidr: PodCidr) -> Self {
        let (first, _) = cidr.pool();
        Self {
            cidr,
            by_ip: BTreeMap::new(),
            by_owner: HashMap::new(),
            cursor: first - 1,
        }
    }

    /// Rebuilds the table from existing pods `(uid, status.podIP)`. Addresses that cannot be reserved
    /// (outside the pool, or claimed twice) are returned with their error so the caller can log them; those
    /// pods will get a fresh address. The cursor continues after the highest address reserved.
    pub fn rebuild<'a>(
        cidr: PodCidr,
        pods: impl IntoIterator<Item = (&'a str, Ipv4Addr)>,
    ) -> (Self, Vec<(String, IpamError)>) {
        let mut a = Self::new(cidr);
        let mut rejected = Vec::new();
        for (uid, ip) in pods {
            if let Err(e) = a.reserve(uid, ip) {
                rejected.push((uid.to_owned(), e));
            }
        }
        if let Some((&last, _)) = a.by_ip.last_key_value() {
            a.cursor = last;
        }
        (a, rejected)
    }

    /// The address held by `owner`, if any.
    pub fn get(&self, owner: &str) -> Option<Ipv4Addr> {
        self.by_owner.get(owner).map(|&ip| Ipv4Addr::from(ip))
    }

    /// Whether `ip` belongs to the assignable pool.
    pub fn in_pool(&self, ip: Ipv4Addr) -> bool {
        let (first, last) = self.cidr.pool();
        (first..=last).contains(&u32::from(ip))
    }

    /// Whether some pod holds `ip`.
    pub fn is_allocated(&self, ip: Ipv4Addr) -> bool {
        self.by_ip.contains_key(&u32::from(ip))
    }

    /// Number of addresses in use.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// Whether no address is in use.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Records that `owner` holds `ip` (idempotent for the same owner).
    pub fn reserve(&mut self, owner: &str, ip: Ipv4Addr) -> Result<(), IpamError> {
        let (first, last) = self.cidr.pool();
        let n = u32::from(ip);
        if !(first..=last).contains(&n) {
            return Err(IpamError::OutOfPool {
                ip,
                cidr: self.cidr,
            });
        }
        match self.by_ip.get(&n) {
            Some(o) if o == owner => return Ok(()),
            Some(o) => {
                return Err(IpamError::Taken {
                    ip,
                    owner: o.clone(),
                });
            }
            None => {}
        }
        if let Some(old) = self.by_owner.insert(owner.to_owned(), n) {
            self.by_ip.remove(&old);
        }
        self.by_ip.insert(n, owner.to_owned());
        Ok(())
    }

    /// Gives `owner` an address: the one it already holds, else `preferred` if that is free and in the pool
    /// (a pod's existing `status.podIP`), else the next free one.
    pub fn allocate(
        &mut self,
        owner: &str,
        preferred: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.get(owner) {
            return Ok(ip);
        }
        if let Some(ip) = preferred
            && self.reserve(owner, ip).is_ok()
        {
            return Ok(ip);
        }
        let (first, last) = self.cidr.pool();
        let start = if self.cursor >= last || self.cursor < first {
            first
        } else {
            self.cursor + 1
        };
        let free = (start..=last)
            .chain(first..start)
            .find(|n| !self.by_ip.contains_key(n))
            .ok_or(IpamError::Exhausted(self.cidr))?;
        self.by_ip.insert(free, owner.to_owned());
        self.by_owner.insert(owner.to_owned(), free);
        self.cursor = free;
        Ok(Ipv4Addr::from(free))
    }

    /// Frees the address held by `owner`, returning it.
    pub fn release(&mut self, owner: &str) -> Option<Ipv4Addr> {
        let n = self.by_owner.remove(owner)?;
        self.by_ip.remove(&n);
        Some(Ipv4Addr::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parses_and_normalises() {
        let c: PodCidr = "10.244.3.7/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.244.0.0/16");
        assert!(c.contains(ip("10.244.255.255")));
        assert!(!c.contains(ip("10.245.0.0")));
        assert!(!c.contains(ip("10.243.255.255")));
        for bad in [
            "10.244.0.0",
            "10.244.0.0/33",
            "10.244.0.0/31",
            "x/16",
            "10.244.0.0/abc",
            "::1/64",
        ] {
            assert!(bad.parse::<PodCidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sequential_from_second_slash24() {
        let mut a = IpAllocator::new("10.244.0.0/16".parse().unwrap());
        assert_eq!(a.allocate("a", None).unwrap(), ip("10.244.1.1"));
        assert_eq!(a.allocate("b", None).unwrap(), ip("10.244.1.2"));
        assert!(a.is_allocated(ip("10.244.1.2")) && !a.is_allocated(ip("10.244.1.3")));
        assert!(
            a.in_pool(ip("10.244.1.3"))
                && !a.in_pool(ip("10.244.0.3"))
                && !a.in_pool(ip("10.244.255.255"))
        );
        // Idempotent per owner.
        assert_eq!(a.allocate("a", None).unwrap(), ip("10.244.1.1"));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn never_hands_out_host_block_network_or_broadcast() {
        let mut a = IpAllocator::new("10.9.0.0/23".parse().unwrap());
        let mut got = Vec::new();
        while let Ok(i) = a.allocate(&format!("p{}", got.len()), None) {
            got.push(i);
        }
        assert_eq!(got.len(), 254);
        assert_eq!(got[0], ip("10.9.1.1"));
        assert_eq!(*got.last().unwrap(), ip("10.9.1.254"));
        assert!(!got.contains(&ip("10.9.1.255")));
        assert!(got.iter().all(|i| i.octets()[2] == 1));
    }

    #[test]
    fn small_cidr_skips_network_and_gateway() {
        let mut a = IpAllocator::new("192.168.5.0/29".parse().unwrap());
        let got: Vec<_> = (0..5)
            .map(|i| a.allocate(&i.to_string(), None).unwrap())
            .collect();
        assert_eq!(got.first(), Some(&ip("192.168.5.2")));
        assert_eq!(got.last(), Some(&ip("192.168.5.6")));
        assert!(a.allocate("x", None).is_err());
    }

    #[test]
    fn exhaustion_is_an_error_and_release_allows_reuse() {
        let cidr: PodCidr = "10.0.0.0/29".parse().unwrap();
        let mut a = IpAllocator::new(cidr);
        for i in 0..5 {
            a.allocate(&format!("p{i}"), None).unwrap();
        }
        assert_eq!(a.allocate("late", None), Err(IpamError::Exhausted(cidr)));
        assert_eq!(a.release("p2"), Some(ip("10.0.0.4")));
        assert_eq!(a.release("p2"), None);
        assert_eq!(a.allocate("late", None).unwrap(), ip("10.0.0.4"));
    }

    #[test]
    fn next_fit_does_not_reuse_a_released_address_at_once() {
        let mut a = IpAllocator::new("10.244.0.0/16".parse().unwrap());
        a.allocate("a", None).unwrap();
        a.allocate("b", None).unwrap();
        a.release("a");
        assert_eq!(a.allocate("c", None).unwrap(), ip("10.244.1.3"));
    }

    #[test]
    fn preferred_address_is_kept_when_free() {
        let mut a = IpAllocator::new("10.244.0.0/16".parse().unwrap());
        assert_eq!(
            a.allocate("a", Some(ip("10.244.7.7"))).unwrap(),
            ip("10.244.7.7")
        );
        // Taken by someone else: a fresh one instead (keeping an address does not move the cursor).
        assert_eq!(
            a.allocate("b", Some(ip("10.244.7.7"))).unwrap(),
            ip("10.244.1.1")
        );
        // Outside the pool (host block): a fresh one.
        assert_eq!(
            a.allocate("c", Some(ip("10.244.0.9"))).unwrap(),
            ip("10.244.1.2")
        );
    }

    #[test]
    fn rebuild_from_existing_pods() {
        let cidr: PodCidr = "10.244.0.0/16".parse().unwrap();
        let pods = [
            ("u1", ip("10.244.1.5")),
            ("u2", ip("10.244.1.9")),
            ("u3", ip("10.244.1.9")),
            ("u4", ip("10.99.0.1")),
            ("u1", ip("10.244.1.5")),
        ];
        let (mut a, rejected) = IpAllocator::rebuild(cidr, pods);
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("u1"), Some(ip("10.244.1.5")));
        assert_eq!(rejected.len(), 2);
        assert!(
            matches!(&rejected[0], (u, IpamError::Taken { owner, .. }) if u == "u3" && owner == "u2")
        );
        assert!(matches!(&rejected[1], (u, IpamError::OutOfPool { .. }) if u == "u4"));
        // New pods continue after the highest existing address.
        assert_eq!(a.allocate("new", None).unwrap(), ip("10.244.1.10"));
        assert_eq!(a.allocate("u1", None).unwrap(), ip("10.244.1.5"));
    }

    #[test]
    fn wraps_around_at_the_end_of_the_pool() {
        let mut a = IpAllocator::new("10.0.0.0/29".parse().unwrap());
        a.reserve("last", ip("10.0.0.6")).unwrap();
        a.allocate("x", None).unwrap();
        let (rebuilt, _) =
            IpAllocator::rebuild("10.0.0.0/29".parse().unwrap(), [("last", ip("10.0.0.6"))]);
        let mut r = rebuilt;
        assert_eq!(r.allocate("y", None).unwrap(), ip("10.0.0.2"));
        assert!(!r.is_empty());
    }
}
