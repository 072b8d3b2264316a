//! Serde forms of the `dots_proto` types that the durable store keeps.
//!
//! `dots_proto` has no serde derives (its wire codecs are CBOR/JSON by key
//! table), so the registry's JSON rows use these mirrors: targets with the
//! YANG names of Table 5, enumerations as their IANA codes (section 10.6),
//! lifetimes as seconds or -1 (section 4.4.1.1), and a whole
//! 'signal-config' in its RFC 7951 JSON encoding (dots_proto's own codec).

use dots_proto::signal::{ActivationType, AttackStatus, ControlAcl, IpPrefix, Lifetime, PortRange, SignalBody, SignalConfig, Status, Target};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `Target` as stored: the YANG leaf names, empty lists omitted.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TargetRepr {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    target_prefix: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    target_port_range: Vec<PortRangeRepr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    target_protocol: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    target_fqdn: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    target_uri: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    alias_name: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PortRangeRepr {
    lower_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upper_port: Option<u16>,
}

pub mod target {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Target, s: S) -> Result<S::Ok, S::Error> {
        TargetRepr {
            target_prefix: t.target_prefix.iter().map(ToString::to_string).collect(),
            target_port_range: t
                .target_port_range
                .iter()
                .map(|r| PortRangeRepr { lower_port: r.lower_port, upper_port: r.upper_port })
                .collect(),
            target_protocol: t.target_protocol.clone(),
            target_fqdn: t.target_fqdn.clone(),
            target_uri: t.target_uri.clone(),
            alias_name: t.alias_name.clone(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        let r = TargetRepr::deserialize(d)?;
        let prefix = |p: &String| p.parse::<IpPrefix>().map_err(|_| D::Error::custom(format!("bad target-prefix {p}")));
        Ok(Target {
            target_prefix: r.target_prefix.iter().map(prefix).collect::<Result<_, _>>()?,
            target_port_range: r
                .target_port_range
                .into_iter()
                .map(|p| PortRange { lower_port: p.lower_port, upper_port: p.upper_port })
                .collect(),
            target_protocol: r.target_protocol,
            target_fqdn: r.target_fqdn,
            target_uri: r.target_uri,
            alias_name: r.alias_name,
        })
    }
}

/// 'status' as its Table 3 code.
pub mod status {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Status, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
        let c = u64::deserialize(d)?;
        Status::from_code(c).ok_or_else(|| D::Error::custom(format!("unknown status {c}")))
    }
}

/// 'attack-status' as its Table 4 code, or null.
pub mod attack_status {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<AttackStatus>, s: S) -> Result<S::Ok, S::Error> {
        v.map(AttackStatus::code).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AttackStatus>, D::Error> {
        match Option::<u64>::deserialize(d)? {
            None => Ok(None),
            Some(c) => AttackStatus::from_code(c)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("unknown attack-status {c}"))),
        }
    }
}

/// 'lifetime' as seconds, with -1 for indefinite (section 4.4.1.1).
pub mod lifetime {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Lifetime, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Lifetime::Seconds(n) => s.serialize_i64(i64::from(*n)),
            Lifetime::Indefinite => s.serialize_i64(-1),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Lifetime, D::Error> {
        match i64::deserialize(d)? {
            -1 => Ok(Lifetime::Indefinite),
            n => u32::try_from(n).map(Lifetime::Seconds).map_err(|_| D::Error::custom(format!("bad lifetime {n}"))),
        }
    }
}

/// An RFC 9133 'acl-list' entry as stored: the name and the
/// 'activation-type' code, absent when the client sent none.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ControlAclRepr {
    acl_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activation_type: Option<u64>,
}

pub mod acl_list {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[ControlAcl], s: S) -> Result<S::Ok, S::Error> {
        let r: Vec<ControlAclRepr> = v
            .iter()
            .map(|a| ControlAclRepr { acl_name: a.acl_name.clone(), activation_type: a.activation_type.map(ActivationType::code) })
            .collect();
        r.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ControlAcl>, D::Error> {
        let one = |r: ControlAclRepr| {
            let activation_type = r
                .activation_type
                .map(|c| ActivationType::from_code(c).ok_or_else(|| D::Error::custom(format!("unknown activation-type {c}"))))
                .transpose()?;
            Ok(ControlAcl { acl_name: r.acl_name, activation_type })
        };
        Vec::<ControlAclRepr>::deserialize(d)?.into_iter().map(one).collect()
    }
}

/// A 'signal-config' in its RFC 7951 JSON form (dots_proto's codec).
pub mod signal_config {
    use super::*;

    pub fn serialize<S: Serializer>(v: &SignalConfig, s: S) -> Result<S::Ok, S::Error> {
        v.to_json().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignalConfig, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        SignalConfig::from_json(&v.to_string()).map(|d| d.value).map_err(D::Error::custom)
    }
}
