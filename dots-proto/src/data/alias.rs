//! DOTS aliases (RFC 8783 draft 29, §4.1 Figure 4, §4.3 `target` and
//! `aliases` groupings, §6): named sets of targets that signal-channel
//! requests can refer to.

use serde::{Deserialize, Serialize};

use crate::data::yang::IpPrefix;

/// Body `{"ietf-dots-data-channel:aliases": {...}}` (Figures 16, 17, 19).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasesBody {
    #[serde(rename = "ietf-dots-data-channel:aliases")]
    pub aliases: Aliases,
}

/// The `aliases` container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aliases {
    /// `alias` list, key `name`.
    #[serde(default)]
    pub alias: Vec<Alias>,
}

/// One alias. Leaf-lists are `Vec`s; an absent leaf-list and an empty one
/// are the same thing in YANG, so empty lists are not emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Alias {
    /// Mandatory.
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_prefix: Vec<IpPrefix>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_port_range: Vec<PortRange>,
    /// IANA protocol numbers; empty means any protocol (§6.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_protocol: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_fqdn: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_uri: Vec<String>,
    /// Read-only: minutes left (responses only, Figure 19).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_lifetime: Option<i32>,
}

impl Alias {
    /// Whether the alias names any target (§6.1: one of `target-prefix`,
    /// `target-fqdn` or `target-uri` MUST be present).
    pub fn has_target(&self) -> bool {
        !(self.target_prefix.is_empty()
            && self.target_fqdn.is_empty()
            && self.target_uri.is_empty())
    }
}

/// `target-port-range` entry (key `lower-port`); without `upper-port` it is
/// the single port `lower-port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PortRange {
    pub lower_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_port: Option<u16>,
}

impl PortRange {
    /// The last port of the range.
    pub fn upper(&self) -> u16 {
        self.upper_port.unwrap_or(self.lower_port)
    }
}
