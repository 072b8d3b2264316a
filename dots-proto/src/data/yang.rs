//! YANG built-in and derived types in their RFC 7951 JSON encoding, as the
//! data channel (RFC 8783 draft 29, section 4.3) uses them.
//!
//! - `uint64`/`counter64` and `decimal64` are JSON *strings* (RFC 7951 §6.1),
//!   e.g. `"rate-limit": "20.00"` in Figure 37.
//! - `bits` is one string of space-separated bit names (RFC 7951 §6.5),
//!   e.g. `"operator": "not any"` in Figure 36.
//! - `identityref` is `module:identity` (RFC 7951 §6.8). The draft's own
//!   examples write `"drop"` and `"ipv4-acl-type"` without the module, so
//!   [`Identity`] accepts both and always emits the qualified form.
//! - `inet:ipv4-prefix` / `inet:ipv6-prefix` / `inet:ip-prefix` (RFC 6991).

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Module that defines the ACL identities (`acl-type`, `forwarding-action`).
pub const ACL_MODULE: &str = "ietf-access-control-list";

// ---------------------------------------------------------------- uint64

/// A YANG `uint64` / `yang:counter64`, encoded as a JSON string (RFC 7951 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct U64(pub u64);

impl Serialize for U64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Only ASCII digits: u64::from_str would accept a leading '+'.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(de::Error::custom(format!("invalid uint64 string {s:?}")));
        }
        s.parse()
            .map(U64)
            .map_err(|_| de::Error::custom(format!("uint64 out of range: {s:?}")))
    }
}

// ------------------------------------------------------------- decimal64

/// A YANG `decimal64 { fraction-digits 2; }` (the ACE `rate-limit`, in bytes
/// per second), stored as hundredths, encoded as a JSON string with exactly
/// two fraction digits (`"20.00"`, Figure 37).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal2(pub i64);

impl Decimal2 {
    /// Whole units (truncated toward zero).
    pub fn whole(self) -> i64 {
        self.0 / 100
    }
}

impl fmt::Display for Decimal2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl FromStr for Decimal2 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid decimal64 (2 fraction digits) {s:?}");
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 2 {
            return Err(bad());
        }
        if body.contains('.') && frac.is_empty() {
            return Err(bad());
        }
        let int: i128 = int.parse().map_err(|_| bad())?;
        let frac: i128 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let v = int
            .checked_mul(100)
            .and_then(|v| v.checked_add(frac))
            .ok_or_else(bad)?;
        let v = if neg { -v } else { v };
        i64::try_from(v).map(Decimal2).map_err(|_| bad())
    }
}

impl Serialize for Decimal2 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

// ------------------------------------------------------------------ bits

/// The names of a YANG `bits` type, in position order.
pub trait BitNames {
    /// The type's name, for error messages.
    const TYPE: &'static str;
    /// Bit names, index `i` is bit `1 << i` of [`Bits`].
    const NAMES: &'static [&'static str];
}

/// A YANG `bits` value: a set of named bits (RFC 7951 §6.5).
pub struct Bits<N: BitNames> {
    mask: u16,
    _names: PhantomData<N>,
}

impl<N: BitNames> Bits<N> {
    /// The empty set.
    pub const EMPTY: Self = Self {
        mask: 0,
        _names: PhantomData,
    };

    /// Builds from a raw mask; bits beyond the type's names are dropped.
    pub fn from_mask(mask: u16) -> Self {
        let all = (1u32 << N::NAMES.len()) - 1;
        Self {
            mask: mask & all as u16,
            _names: PhantomData,
        }
    }

    /// The set as a mask, bit `i` being `N::NAMES[i]`.
    pub fn mask(&self) -> u16 {
        self.mask
    }

    /// Whether the bit called `name` is set.
    pub fn has(&self, name: &str) -> bool {
        N::NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|i| self.mask & (1 << i) != 0)
    }

    /// Set names in position order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        N::NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.mask & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

impl<N: BitNames> Clone for Bits<N> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<N: BitNames> Copy for Bits<N> {}
impl<N: BitNames> PartialEq for Bits<N> {
    fn eq(&self, o: &Self) -> bool {
        self.mask == o.mask
    }
}
impl<N: BitNames> Eq for Bits<N> {}

impl<N: BitNames> fmt::Debug for Bits<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:?})", N::TYPE, self.to_string())
    }
}

impl<N: BitNames> fmt::Display for Bits<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(n)?;
        }
        Ok(())
    }
}

impl<N: BitNames> FromStr for Bits<N> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut mask = 0u16;
        // RFC 7951 §6.5: names separated by space characters; any order.
        for word in s.split_ascii_whitespace() {
            let Some(i) = N::NAMES.iter().position(|n| *n == word) else {
                return Err(format!(
                    "unknown bit {word:?} in {} {s:?} (known: {})",
                    N::TYPE,
                    N::NAMES.join(", ")
                ));
            };
            if mask & (1 << i) != 0 {
                return Err(format!("bit {word:?} repeated in {} {s:?}", N::TYPE));
            }
            mask |= 1 << i;
        }
        Ok(Self {
            mask,
            _names: PhantomData,
        })
    }
}

impl<N: BitNames> Serialize for Bits<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, N: BitNames> Deserialize<'de> for Bits<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

// ----------------------------------------------------------- identityref

/// The identities of one `identityref` base.
pub trait IdentitySet: Sized + Copy + 'static {
    /// Module defining the identities.
    const MODULE: &'static str;
    /// Name of the base, for error messages.
    const BASE: &'static str;
    /// All identities with their names.
    const ALL: &'static [(Self, &'static str)];
}

/// Serde adapter for `identityref` enums: accepts `module:name` and bare
/// `name` (the draft's examples use the bare form), emits `module:name`
/// (RFC 7951 §6.8 requires it when the identity's module differs from the
/// leaf's, as here).
pub(crate) fn identity_name<T: IdentitySet + PartialEq>(v: &T) -> &'static str {
    T::ALL
        .iter()
        .find(|(x, _)| x == v)
        .map(|(_, n)| *n)
        .unwrap_or("?")
}

pub(crate) fn serialize_identity<T, S>(v: &T, s: S) -> Result<S::Ok, S::Error>
where
    T: IdentitySet + PartialEq,
    S: Serializer,
{
    s.collect_str(&format_args!("{}:{}", T::MODULE, identity_name(v)))
}

pub(crate) fn parse_identity<T: IdentitySet>(s: &str) -> Result<T, String> {
    let bare = match s.split_once(':') {
        Some((module, name)) if module == T::MODULE => name,
        Some((module, _)) => {
            return Err(format!(
                "{} {s:?}: module {module:?} is not {:?}",
                T::BASE,
                T::MODULE
            ))
        }
        None => s,
    };
    T::ALL
        .iter()
        .find(|(_, n)| *n == bare)
        .map(|(v, _)| *v)
        .ok_or_else(|| {
            let known: Vec<_> = T::ALL.iter().map(|(_, n)| *n).collect();
            format!("unknown {} {s:?} (known: {})", T::BASE, known.join(", "))
        })
}

pub(crate) fn deserialize_identity<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: IdentitySet,
    D: Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    parse_identity(&s).map_err(de::Error::custom)
}

/// Implements Serialize/Deserialize for an [`IdentitySet`] enum.
macro_rules! identity_serde {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::data::yang::serialize_identity(self, s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::data::yang::deserialize_identity(d)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::data::yang::identity_name(self))
            }
        }
    };
}
pub(crate) use identity_serde;

// ---------------------------------------------------------------- prefix

/// An IP prefix `address/length` (RFC 6991 `inet:ip-prefix`). The address
/// is kept as sent (host bits may be set: RFC 6991 only defines a canonical
/// form with them cleared), so that a decoded prefix re-encodes unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    /// The address part.
    pub addr: IpAddr,
    /// The prefix length, at most 32 (IPv4) or 128 (IPv6).
    pub len: u8,
}

impl IpPrefix {
    /// Builds a prefix, or `None` when `len` is too long for the family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        (len <= max_len(&addr)).then_some(Self { addr, len })
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether this prefix and `other` (same family) share any address.
    pub fn overlaps(&self, other: &IpPrefix) -> bool {
        let len = self.len.min(other.len);
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => mask32(a, len) == mask32(b, len),
            (IpAddr::V6(a), IpAddr::V6(b)) => mask128(a, len) == mask128(b, len),
            _ => false,
        }
    }

    /// Whether `other` lies entirely inside this prefix (same family).
    pub fn contains(&self, other: &IpPrefix) -> bool {
        other.len >= self.len && self.overlaps(other)
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask32(a: Ipv4Addr, len: u8) -> u32 {
    let bits = u32::from(a);
    if len == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask128(a: Ipv6Addr, len: u8) -> u128 {
    let bits = u128::from(a);
    if len == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(len)))
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("prefix {s:?} has no '/length'"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("prefix {s:?}: bad address {a:?}"))?;
        // Digits only: u8::from_str accepts "+8".
        let len: u8 = (!l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()))
            .then(|| l.parse().ok())
            .flatten()
            .ok_or_else(|| format!("prefix {s:?}: bad length {l:?}"))?;
        IpPrefix::new(addr, len)
            .ok_or_else(|| format!("prefix {s:?}: length {len} exceeds {}", max_len(&addr)))
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(PrefixVisitor(None))
    }
}

/// `inet:ipv4-prefix`: an [`IpPrefix`] that must be IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix(pub IpPrefix);

/// `inet:ipv6-prefix`: an [`IpPrefix`] that must be IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix(pub IpPrefix);

struct PrefixVisitor(Option<bool>);

impl Visitor<'_> for PrefixVisitor {
    type Value = IpPrefix;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an IP prefix string such as \"192.0.2.0/24\"")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<IpPrefix, E> {
        let p: IpPrefix = s.parse().map_err(E::custom)?;
        match self.0 {
            Some(true) if !p.is_ipv4() => Err(E::custom(format!("{s:?} is not an IPv4 prefix"))),
            Some(false) if p.is_ipv4() => Err(E::custom(format!("{s:?} is not an IPv6 prefix"))),
            _ => Ok(p),
        }
    }
}

macro_rules! family_prefix {
    ($t:ident, $v4:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(PrefixVisitor(Some($v4))).map($t)
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                PrefixVisitor(Some($v4))
                    .visit_str::<de::value::Error>(s)
                    .map($t)
                    .map_err(|e| e.to_string())
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}
family_prefix!(Ipv4Prefix, true);
family_prefix!(Ipv6Prefix, false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal2_parses_and_prints() {
        for (s, v, out) in [
            ("20.00", 2000, "20.00"),
            ("20", 2000, "20.00"),
            ("0.5", 50, "0.50"),
            ("-1.25", -125, "-1.25"),
        ] {
            let d: Decimal2 = s.parse().unwrap();
            assert_eq!(d.0, v);
            assert_eq!(d.to_string(), out);
        }
        for bad in [
            "",
            "1.",
            ".5",
            "1.234",
            "1e3",
            "+1",
            "--1",
            "92233720368547758.08",
            "a",
        ] {
            assert!(bad.parse::<Decimal2>().is_err(), "{bad}");
        }
        assert_eq!(
            "92233720368547758.07".parse::<Decimal2>().unwrap().0,
            i64::MAX
        );
    }

    #[test]
    fn u64_is_a_string() {
        assert_eq!(
            serde_json::to_string(&U64(u64::MAX)).unwrap(),
            "\"18446744073709551615\""
        );
        assert!(serde_json::from_str::<U64>("5").is_err());
        assert!(serde_json::from_str::<U64>("\"+5\"").is_err());
        assert!(serde_json::from_str::<U64>("\"18446744073709551616\"").is_err());
    }

    #[test]
    fn prefixes() {
        let p: IpPrefix = "2001:db8:6401::2/127".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8:6401::2/127");
        assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
        assert!("10.0.0.0/+8".parse::<IpPrefix>().is_err());
        assert!("10.0.0.0".parse::<IpPrefix>().is_err());
        assert!("::/0".parse::<Ipv4Prefix>().is_err());
        let a: IpPrefix = "10.0.0.0/8".parse().unwrap();
        let b: IpPrefix = "10.1.0.0/16".parse().unwrap();
        assert!(a.contains(&b) && !b.contains(&a) && b.overlaps(&a));
    }
}
