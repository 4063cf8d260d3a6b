//! Pod IP address management over VPC subnets. Pure: no I/O, no clock.
//!
//! Like AWS, each subnet keeps five addresses back: the network address, `+1` (VPC router),
//! `+2` (DNS), `+3` (future use) and the broadcast address. So a `/28` has 11 usable addresses and
//! a `/16` 65 531. AWS allows subnet sizes `/16` to `/28`.
//!
//! A [`SubnetPool`] is a bitset of its usable addresses plus a cursor below which every address is
//! in use, so [`SubnetPool::allocate`] hands out the lowest free address without scanning a set.
//! [`Ipam`] holds the pools of all subnets, which must not overlap: every pod shares one address
//! space on the host, so an address names one pod.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Addresses at offsets 0..4 of a subnet (network, router, DNS, future) are reserved.
const FIRST_USABLE: u32 = 4;
const MIN_PREFIX: u8 = 16;
const MAX_PREFIX: u8 = 28;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid CIDR {cidr:?}: {reason}")]
    InvalidCidr { cidr: String, reason: String },
    #[error("unknown subnet {0}")]
    UnknownSubnet(String),
    #[error("subnet {0} is added twice")]
    DuplicateSubnet(String),
    #[error("subnet {subnet} ({cidr}) overlaps subnet {other} ({other_cidr})")]
    Overlap {
        subnet: String,
        cidr: String,
        other: String,
        other_cidr: String,
    },
    #[error("{ip} is not in subnet {subnet} ({cidr})")]
    OutOfRange {
        ip: Ipv4Addr,
        subnet: String,
        cidr: String,
    },
    #[error(
        "{ip} is reserved by AWS in subnet {subnet} (network, router, DNS, future use and \
         broadcast addresses)"
    )]
    Reserved { ip: Ipv4Addr, subnet: String },
    #[error("{ip} is already allocated in subnet {subnet}")]
    InUse { ip: Ipv4Addr, subnet: String },
    #[error("no free IP addresses in {}", subnet_list(.subnets))]
    Exhausted { subnets: Vec<String> },
    #[error("no subnets to allocate an IP address from")]
    NoSubnets,
}

fn subnet_list(subnets: &[String]) -> String {
    let noun = if subnets.len() == 1 {
        "subnet"
    } else {
        "subnets"
    };
    format!("{noun} {}", subnets.join(", "))
}

/// Parses an IPv4 subnet CIDR that AWS would accept: prefix `/16`..`/28`, no host bits set.
pub fn parse_subnet_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), IpamError> {
    let invalid = |reason: String| IpamError::InvalidCidr {
        cidr: cidr.to_string(),
        reason,
    };
    let (addr, len) = cidr
        .split_once('/')
        .ok_or_else(|| invalid("expected an IPv4 CIDR such as 10.0.128.0/19".to_string()))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| invalid(format!("{addr:?} is not an IPv4 address")))?;
    let len: u8 = len
        .parse()
        .map_err(|_| invalid(format!("{len:?} is not a prefix length")))?;
    if !(MIN_PREFIX..=MAX_PREFIX).contains(&len) {
        return Err(invalid(format!(
            "prefix length /{len} is outside /{MIN_PREFIX}../{MAX_PREFIX}, the subnet sizes AWS allows"
        )));
    }
    let mask = u32::MAX << (32 - len);
    let network = u32::from(addr) & mask;
    if network != u32::from(addr) {
        return Err(invalid(format!(
            "host bits are set; the network is {}/{len}",
            Ipv4Addr::from(network)
        )));
    }
    Ok((addr, len))
}

/// The addresses of one subnet.
#[derive(Debug, Clone)]
pub struct SubnetPool {
    subnet_id: String,
    cidr: String,
    network: u32,
    prefix_len: u8,
    /// Bit `i` is address `network + FIRST_USABLE + i`; set = in use. Bits past `capacity` in the
    /// last word are set so scans never return them.
    bits: Vec<u64>,
    capacity: u32,
    allocated: u32,
    /// Every index below the cursor is in use.
    cursor: u32,
}

impl SubnetPool {
    pub fn new(subnet_id: impl Into<String>, cidr: &str) -> Result<Self, IpamError> {
        let (addr, prefix_len) = parse_subnet_cidr(cidr)?;
        let size = 1u32 << (32 - prefix_len);
        let capacity = size - 5;
        let words = capacity.div_ceil(64) as usize;
        let mut bits = vec![0u64; words];
        let tail = capacity % 64;
        if tail != 0 {
            bits[words - 1] = u64::MAX << tail;
        }
        Ok(SubnetPool {
            subnet_id: subnet_id.into(),
            cidr: format!("{addr}/{prefix_len}"),
            network: u32::from(addr),
            prefix_len,
            bits,
            capacity,
            allocated: 0,
            cursor: 0,
        })
    }

    pub fn subnet_id(&self) -> &str {
        &self.subnet_id
    }

    /// `10.0.128.0/19`.
    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The VPC router of the subnet (`network + 1`): a pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + self.size() - 1)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix_len)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip).wrapping_sub(self.network) < self.size()
    }

    /// One of the five addresses AWS keeps back. False for addresses outside the subnet.
    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && self.index(ip).is_none()
    }

    /// The bit index of a usable address of this subnet.
    fn index(&self, ip: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(ip).wrapping_sub(self.network);
        (FIRST_USABLE..self.size() - 1)
            .contains(&offset)
            .then(|| offset - FIRST_USABLE)
    }

    fn addr(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network + FIRST_USABLE + index)
    }

    fn is_set(&self, index: u32) -> bool {
        self.bits[(index / 64) as usize] & (1 << (index % 64)) != 0
    }

    fn set(&mut self, index: u32) {
        self.bits[(index / 64) as usize] |= 1 << (index % 64);
        self.allocated += 1;
    }

    /// Whether the address is handed out (or reserved with [`reserve`](Self::reserve)).
    pub fn is_allocated(&self, ip: Ipv4Addr) -> bool {
        self.index(ip).is_some_and(|i| self.is_set(i))
    }

    /// The lowest free address, now marked in use; `None` when the subnet is full.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let start = (self.cursor / 64) as usize;
        let (word, bits) = self
            .bits
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, w)| **w != u64::MAX)?;
        let index = word as u32 * 64 + bits.trailing_ones();
        debug_assert!(index < self.capacity);
        self.set(index);
        self.cursor = index + 1;
        Some(self.addr(index))
    }

    /// Marks an address in use, e.g. a stored pod's IP when rebuilding after a restart.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        if !self.contains(ip) {
            return Err(IpamError::OutOfRange {
                ip,
                subnet: self.subnet_id.clone(),
                cidr: self.cidr.clone(),
            });
        }
        let Some(index) = self.index(ip) else {
            return Err(IpamError::Reserved {
                ip,
                subnet: self.subnet_id.clone(),
            });
        };
        if self.is_set(index) {
            return Err(IpamError::InUse {
                ip,
                subnet: self.subnet_id.clone(),
            });
        }
        self.set(index);
        Ok(())
    }

    /// Frees an address; false when it was not in use (or not a usable address of the subnet).
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        let Some(index) = self.index(ip) else {
            return false;
        };
        if !self.is_set(index) {
            return false;
        }
        self.bits[(index / 64) as usize] &= !(1 << (index % 64));
        self.allocated -= 1;
        self.cursor = self.cursor.min(index);
        true
    }

    /// Usable addresses: the subnet's size minus the five AWS keeps.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn allocated(&self) -> u32 {
        self.allocated
    }

    pub fn free(&self) -> u32 {
        self.capacity - self.allocated
    }
}

/// The pools of all subnets pods may use.
#[derive(Debug, Clone, Default)]
pub struct Ipam {
    pools: Vec<SubnetPool>,
    by_id: HashMap<String, usize>,
}

impl Ipam {
    pub fn new() -> Self {
        Self::default()
    }

    /// An IPAM over `(subnet id, CIDR)` pairs, e.g. the private subnets of the network model.
    pub fn from_subnets<I, S, C>(subnets: I) -> Result<Self, IpamError>
    where
        I: IntoIterator<Item = (S, C)>,
        S: Into<String>,
        C: AsRef<str>,
    {
        let mut ipam = Ipam::new();
        for (id, cidr) in subnets {
            ipam.add_subnet(id, cidr.as_ref())?;
        }
        Ok(ipam)
    }

    /// Adds a subnet; it must not overlap one already added.
    pub fn add_subnet(
        &mut self,
        subnet_id: impl Into<String>,
        cidr: &str,
    ) -> Result<(), IpamError> {
        let pool = SubnetPool::new(subnet_id, cidr)?;
        if self.by_id.contains_key(&pool.subnet_id) {
            return Err(IpamError::DuplicateSubnet(pool.subnet_id));
        }
        let (lo, hi) = (pool.network, pool.network + (pool.size() - 1));
        if let Some(other) = self
            .pools
            .iter()
            .find(|p| p.network <= hi && lo <= p.network + (p.size() - 1))
        {
            return Err(IpamError::Overlap {
                subnet: pool.subnet_id,
                cidr: pool.cidr,
                other: other.subnet_id.clone(),
                other_cidr: other.cidr.clone(),
            });
        }
        self.by_id.insert(pool.subnet_id.clone(), self.pools.len());
        self.pools.push(pool);
        Ok(())
    }

    pub fn pool(&self, subnet_id: &str) -> Option<&SubnetPool> {
        self.by_id.get(subnet_id).map(|&i| &self.pools[i])
    }

    pub fn pools(&self) -> impl Iterator<Item = &SubnetPool> {
        self.pools.iter()
    }

    /// The subnet an address belongs to (its prefix length and gateway configure the pod's
    /// interface).
    pub fn subnet_of(&self, ip: Ipv4Addr) -> Option<&SubnetPool> {
        self.pools.iter().find(|p| p.contains(ip))
    }

    /// The lowest free address of one of `subnet_ids` (a Fargate profile's subnets). The search
    /// starts at subnet `spread_key % n`, so different keys (e.g. a hash of the pod UID) spread
    /// pods across subnets and zones, and moves on past full subnets.
    pub fn allocate_in(
        &mut self,
        subnet_ids: &[String],
        spread_key: u64,
    ) -> Result<(String, Ipv4Addr), IpamError> {
        if subnet_ids.is_empty() {
            return Err(IpamError::NoSubnets);
        }
        let indexes = subnet_ids
            .iter()
            .map(|id| {
                self.by_id
                    .get(id)
                    .copied()
                    .ok_or_else(|| IpamError::UnknownSubnet(id.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = indexes.len();
        let start = (spread_key % n as u64) as usize;
        for i in 0..n {
            let k = (start + i) % n;
            if let Some(ip) = self.pools[indexes[k]].allocate() {
                return Ok((subnet_ids[k].clone(), ip));
            }
        }
        Err(IpamError::Exhausted {
            subnets: subnet_ids.to_vec(),
        })
    }

    /// Frees an address in whichever subnet holds it; false when it was not in use.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        self.pools
            .iter_mut()
            .find(|p| p.contains(ip))
            .is_some_and(|p| p.release(ip))
    }

    /// Marks a stored pod's address in use.
    pub fn reserve(&mut self, subnet_id: &str, ip: Ipv4Addr) -> Result<(), IpamError> {
        let &i = self
            .by_id
            .get(subnet_id)
            .ok_or_else(|| IpamError::UnknownSubnet(subnet_id.to_string()))?;
        self.pools[i].reserve(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidrs_aws_accepts() {
        assert_eq!(
            parse_subnet_cidr("10.0.128.0/19").unwrap(),
            (ip("10.0.128.0"), 19)
        );
        assert_eq!(parse_subnet_cidr("10.1.0.0/16").unwrap().1, 16);
        assert_eq!(parse_subnet_cidr("10.1.0.16/28").unwrap().1, 28);
        for (bad, why) in [
            ("10.0.0.0/15", "outside /16../28"),
            ("10.0.0.0/29", "outside /16../28"),
            ("10.0.0.0", "expected an IPv4 CIDR"),
            ("10.0.0/24", "not an IPv4 address"),
            ("10.0.0.0/x", "not a prefix length"),
            ("10.0.0.5/24", "the network is 10.0.0.0/24"),
        ] {
            let err = parse_subnet_cidr(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn slash_28_has_11_usable_addresses_skipping_reserved() {
        let mut pool = SubnetPool::new("subnet-a", "10.0.0.16/28").unwrap();
        assert_eq!(pool.capacity(), 11);
        assert_eq!(pool.gateway(), ip("10.0.0.17"));
        assert_eq!(pool.broadcast(), ip("10.0.0.31"));
        let got: Vec<Ipv4Addr> = std::iter::from_fn(|| pool.allocate()).collect();
        let want: Vec<Ipv4Addr> = (20..=30).map(|d| Ipv4Addr::new(10, 0, 0, d)).collect();
        assert_eq!(got, want);
        assert_eq!(pool.free(), 0);
        assert_eq!(pool.allocate(), None);
        for reserved in [
            "10.0.0.16",
            "10.0.0.17",
            "10.0.0.18",
            "10.0.0.19",
            "10.0.0.31",
        ] {
            assert!(pool.is_reserved(ip(reserved)), "{reserved}");
            assert!(!pool.release(ip(reserved)));
        }
        assert!(!pool.is_reserved(ip("10.0.0.32")));
    }

    #[test]
    fn release_hands_back_the_lowest_free_address() {
        let mut pool = SubnetPool::new("subnet-a", "10.0.1.0/24").unwrap();
        let ips: Vec<_> = (0..10).map(|_| pool.allocate().unwrap()).collect();
        assert_eq!(ips[0], ip("10.0.1.4"));
        assert!(pool.release(ips[7]));
        assert!(pool.release(ips[3]));
        assert!(!pool.release(ips[3]), "second release is a no-op");
        assert_eq!(pool.allocated(), 8);
        assert_eq!(pool.allocate(), Some(ips[3]));
        assert_eq!(pool.allocate(), Some(ips[7]));
        assert_eq!(pool.allocate(), Some(ip("10.0.1.14")));
        assert_eq!(pool.free(), 251 - 11);
    }

    #[test]
    fn reserve_checks_range_reserved_and_duplicates() {
        let mut pool = SubnetPool::new("subnet-a", "10.0.1.0/24").unwrap();
        pool.reserve(ip("10.0.1.4")).unwrap();
        pool.reserve(ip("10.0.1.200")).unwrap();
        assert_eq!(
            pool.reserve(ip("10.0.1.200")),
            Err(IpamError::InUse {
                ip: ip("10.0.1.200"),
                subnet: "subnet-a".into()
            })
        );
        assert_eq!(
            pool.reserve(ip("10.0.2.5")).unwrap_err().to_string(),
            "10.0.2.5 is not in subnet subnet-a (10.0.1.0/24)"
        );
        assert!(matches!(
            pool.reserve(ip("10.0.1.255")),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            pool.reserve(ip("10.0.1.2")),
            Err(IpamError::Reserved { .. })
        ));
        assert_eq!(pool.allocate(), Some(ip("10.0.1.5")));
        assert_eq!(pool.allocated(), 3);
    }

    #[test]
    fn slash_16_fills_and_refills() {
        let mut pool = SubnetPool::new("subnet-big", "10.1.0.0/16").unwrap();
        assert_eq!(pool.capacity(), 65_531);
        let mut last = None;
        let mut n = 0;
        while let Some(a) = pool.allocate() {
            last = Some(a);
            n += 1;
        }
        assert_eq!(n, 65_531);
        assert_eq!(last, Some(ip("10.1.255.254")));
        assert_eq!(pool.free(), 0);
        assert!(pool.release(ip("10.1.128.7")));
        assert!(pool.release(ip("10.1.3.9")));
        assert_eq!(pool.free(), 2);
        assert_eq!(pool.allocate(), Some(ip("10.1.3.9")));
        assert_eq!(pool.allocate(), Some(ip("10.1.128.7")));
        assert_eq!(pool.allocate(), None);
    }

    fn three_zones() -> Ipam {
        Ipam::from_subnets([
            ("subnet-a", "10.0.128.0/28"),
            ("subnet-b", "10.0.160.0/28"),
            ("subnet-c", "10.0.192.0/28"),
        ])
        .unwrap()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allocate_in_spreads_by_key_and_skips_full_subnets() {
        let mut ipam = three_zones();
        let subnets = ids(&["subnet-a", "subnet-b", "subnet-c"]);
        assert_eq!(
            ipam.allocate_in(&subnets, 0).unwrap(),
            ("subnet-a".to_string(), ip("10.0.128.4"))
        );
        assert_eq!(
            ipam.allocate_in(&subnets, 1).unwrap(),
            ("subnet-b".to_string(), ip("10.0.160.4"))
        );
        assert_eq!(
            ipam.allocate_in(&subnets, 5).unwrap(),
            ("subnet-c".to_string(), ip("10.0.192.4"))
        );
        // Fill subnet-b; key 1 then moves on to subnet-c.
        while ipam.allocate_in(&ids(&["subnet-b"]), 0).is_ok() {}
        assert_eq!(ipam.pool("subnet-b").unwrap().free(), 0);
        assert_eq!(
            ipam.allocate_in(&subnets, 1).unwrap(),
            ("subnet-c".to_string(), ip("10.0.192.5"))
        );
        // Exhaust everything.
        while ipam.allocate_in(&subnets, 0).is_ok() {}
        let err = ipam
            .allocate_in(&ids(&["subnet-a", "subnet-b"]), 7)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no free IP addresses in subnets subnet-a, subnet-b"
        );
        assert_eq!(
            ipam.allocate_in(&ids(&["subnet-c"]), 0)
                .unwrap_err()
                .to_string(),
            "no free IP addresses in subnet subnet-c"
        );
        // Releasing in any subnet makes room again.
        assert!(ipam.release(ip("10.0.160.9")));
        assert!(!ipam.release(ip("10.0.160.9")));
        assert_eq!(
            ipam.allocate_in(&subnets, 0).unwrap(),
            ("subnet-b".to_string(), ip("10.0.160.9"))
        );
    }

    #[test]
    fn ipam_errors() {
        let mut ipam = three_zones();
        assert_eq!(
            ipam.allocate_in(&ids(&["subnet-x"]), 0),
            Err(IpamError::UnknownSubnet("subnet-x".into()))
        );
        assert_eq!(ipam.allocate_in(&[], 0), Err(IpamError::NoSubnets));
        assert_eq!(
            ipam.add_subnet("subnet-a", "10.9.0.0/24"),
            Err(IpamError::DuplicateSubnet("subnet-a".into()))
        );
        assert_eq!(
            ipam.add_subnet("subnet-d", "10.0.0.0/16")
                .unwrap_err()
                .to_string(),
            "subnet subnet-d (10.0.0.0/16) overlaps subnet subnet-a (10.0.128.0/28)"
        );
        assert!(ipam.add_subnet("subnet-e", "10.0.128.16/28").is_ok());
        ipam.reserve("subnet-a", ip("10.0.128.6")).unwrap();
        assert!(matches!(
            ipam.reserve("subnet-a", ip("10.0.160.6")),
            Err(IpamError::OutOfRange { .. })
        ));
        assert_eq!(
            ipam.reserve("subnet-z", ip("10.0.128.6")),
            Err(IpamError::UnknownSubnet("subnet-z".into()))
        );
        assert_eq!(
            ipam.subnet_of(ip("10.0.128.6")).unwrap().subnet_id(),
            "subnet-a"
        );
        assert!(ipam.subnet_of(ip("10.0.129.6")).is_none());
        assert!(
            ipam.pool("subnet-a")
                .unwrap()
                .is_allocated(ip("10.0.128.6"))
        );
    }

    #[test]
    fn default_network_model_private_subnets() {
        // The private subnets of localfargate-core's default VPC model.
        let mut ipam = Ipam::from_subnets([
            ("subnet-0a1b2c3d4e5f60004", "10.0.128.0/19"),
            ("subnet-0a1b2c3d4e5f60005", "10.0.160.0/19"),
            ("subnet-0a1b2c3d4e5f60006", "10.0.192.0/19"),
        ])
        .unwrap();
        assert_eq!(ipam.pools().map(|p| p.capacity()).sum::<u32>(), 3 * 8187);
        let subnets: Vec<String> = ipam.pools().map(|p| p.subnet_id().to_string()).collect();
        let (_, a) = ipam.allocate_in(&subnets, 2).unwrap();
        assert_eq!(a, ip("10.0.192.4"));
        let pool = ipam.subnet_of(a).unwrap();
        assert_eq!((pool.gateway(), pool.prefix_len()), (ip("10.0.192.1"), 19));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate,
        /// Release the n-th (mod len) allocated address.
        ReleaseHeld(usize),
        /// Release or reserve an arbitrary offset into (and around) the subnet.
        Release(u32),
        Reserve(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Allocate),
            2 => any::<usize>().prop_map(Op::ReleaseHeld),
            1 => (0u32..300).prop_map(Op::Release),
            1 => (0u32..300).prop_map(Op::Reserve),
        ]
    }

    proptest! {
        #[test]
        fn pool_matches_a_set_model(prefix in 24u8..=28, ops in proptest::collection::vec(op(), 0..400)) {
            let cidr = format!("10.7.3.0/{prefix}");
            let mut pool = SubnetPool::new("subnet-p", &cidr).unwrap();
            let network = u32::from(ip("10.7.3.0"));
            let size = 1u32 << (32 - prefix);
            let usable: BTreeSet<u32> = (network + 4..network + size - 1).collect();
            let mut held: BTreeSet<u32> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Allocate => {
                        let want = usable.iter().find(|a| !held.contains(a)).copied();
                        let got = pool.allocate().map(u32::from);
                        prop_assert_eq!(got, want, "allocate returns the lowest free usable address");
                        if let Some(a) = got {
                            prop_assert!(usable.contains(&a), "never a reserved or outside address");
                            prop_assert!(held.insert(a), "never a duplicate");
                        }
                    }
                    Op::ReleaseHeld(n) => {
                        if !held.is_empty() {
                            let a = *held.iter().nth(n % held.len()).unwrap();
                            prop_assert!(pool.release(Ipv4Addr::from(a)));
                            held.remove(&a);
                        }
                    }
                    Op::Release(off) => {
                        let a = network + off;
                        prop_assert_eq!(pool.release(Ipv4Addr::from(a)), held.remove(&a));
                    }
                    Op::Reserve(off) => {
                        let a = network + off;
                        let r = pool.reserve(Ipv4Addr::from(a));
                        if !usable.contains(&a) {
                            prop_assert!(r.is_err());
                        } else if held.contains(&a) {
                            prop_assert!(matches!(r, Err(IpamError::InUse { .. })), "{:?}", r);
                        } else {
                            prop_assert!(r.is_ok());
                            held.insert(a);
                        }
                    }
                }
                prop_assert_eq!(pool.allocated() as usize, held.len());
                prop_assert_eq!(pool.free() as usize, usable.len() - held.len());
                prop_assert_eq!(pool.capacity() as usize, usable.len());
            }
            for a in &usable {
                prop_assert_eq!(pool.is_allocated(Ipv4Addr::from(*a)), held.contains(a));
            }
        }
    }
}
