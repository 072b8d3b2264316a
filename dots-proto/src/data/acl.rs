//! DOTS filtering rules (RFC 8783 draft 29, §4.1 Figure 5, §4.3
//! `access-lists`, §7.2): an ordered list of ACLs, each an ordered list of
//! ACEs with matches, actions and (read-only) statistics.

pub mod matches;

use serde::{Deserialize, Serialize};

use crate::data::yang::{identity_serde, Decimal2, IdentitySet, ACL_MODULE, U64};
pub use matches::*;

/// Body `{"ietf-dots-data-channel:acls": {...}}` (Figures 24–38).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclsBody {
    #[serde(rename = "ietf-dots-data-channel:acls")]
    pub acls: Acls,
}

/// The `acls` container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acls {
    /// `acl` list, ordered by user.
    #[serde(default)]
    pub acl: Vec<Acl>,
}

/// One ACL (`list acl`, key `name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Acl {
    /// 1..64 characters.
    pub name: String,
    /// Primary match type (`ietf-acl:acl-type`); optional.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub acl_type: Option<AclType>,
    /// Absent means `activate-when-mitigating` (§7.2); see
    /// [`Acl::effective_activation`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_type: Option<ActivationType>,
    /// Read-only: minutes left (responses only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_lifetime: Option<i32>,
    /// The ACEs. Optional in the schema, and absent from non-config GET
    /// responses (Figure 31 has it, but only with names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aces: Option<Aces>,
}

impl Acl {
    /// The activation type, with the §7.2 default applied.
    pub fn effective_activation(&self) -> ActivationType {
        self.activation_type
            .unwrap_or(ActivationType::ActivateWhenMitigating)
    }

    /// The ACEs, empty when the container is absent.
    pub fn ace_list(&self) -> &[Ace] {
        self.aces.as_ref().map_or(&[], |a| &a.ace)
    }
}

/// The `aces` container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aces {
    /// `ace` list, ordered by user.
    #[serde(default)]
    pub ace: Vec<Ace>,
}

/// One ACE (`list ace`, key `name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ace {
    /// 1..64 characters, unique in its ACL.
    pub name: String,
    /// Absent matches every packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<Matches>,
    /// Mandatory in requests (§7.2), absent in non-config responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Actions>,
    /// Read-only counters (responses only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
}

/// The `actions` container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Actions {
    /// Mandatory.
    pub forwarding: ForwardingAction,
    /// Bytes per second, `decimal64` with 2 fraction digits (a JSON string);
    /// only with `accept` (the YANG `when`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Decimal2>,
}

/// `statistics` (RFC 8519 `acl-counters`); counter64 values are strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Statistics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_packets: Option<U64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_octets: Option<U64>,
}

/// `activation-type` enumeration (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationType {
    /// Installed only while a mitigation is active for the client (default).
    ActivateWhenMitigating,
    /// Installed now.
    Immediate,
    /// Kept by the server but not enforced.
    Deactivate,
}

/// RFC 8519 `acl-type` identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclType {
    Ipv4,
    Ipv6,
    Eth,
    MixedEthIpv4,
    MixedEthIpv6,
    MixedEthIpv4Ipv6,
}

impl IdentitySet for AclType {
    const MODULE: &'static str = ACL_MODULE;
    const BASE: &'static str = "acl-type";
    const ALL: &'static [(Self, &'static str)] = &[
        (AclType::Ipv4, "ipv4-acl-type"),
        (AclType::Ipv6, "ipv6-acl-type"),
        (AclType::Eth, "eth-acl-type"),
        (AclType::MixedEthIpv4, "mixed-eth-ipv4-acl-type"),
        (AclType::MixedEthIpv6, "mixed-eth-ipv6-acl-type"),
        (AclType::MixedEthIpv4Ipv6, "mixed-eth-ipv4-ipv6-acl-type"),
    ];
}
identity_serde!(AclType);

impl AclType {
    /// `derived-from(type, 'ietf-acl:ipv4-acl-type')` (RFC 8519 identities).
    pub fn allows_ipv4(self) -> bool {
        matches!(
            self,
            AclType::Ipv4 | AclType::MixedEthIpv4 | AclType::MixedEthIpv4Ipv6
        )
    }
    /// `derived-from(type, 'ietf-acl:ipv6-acl-type')`.
    pub fn allows_ipv6(self) -> bool {
        matches!(
            self,
            AclType::Ipv6 | AclType::MixedEthIpv6 | AclType::MixedEthIpv4Ipv6
        )
    }
}

/// RFC 8519 `forwarding-action` identities. `reject` parses (it is a valid
/// identity) but DOTS does not support it (§4.1): validation refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardingAction {
    Accept,
    Drop,
    Reject,
}

impl IdentitySet for ForwardingAction {
    const MODULE: &'static str = ACL_MODULE;
    const BASE: &'static str = "forwarding-action";
    const ALL: &'static [(Self, &'static str)] = &[
        (ForwardingAction::Accept, "accept"),
        (ForwardingAction::Drop, "drop"),
        (ForwardingAction::Reject, "reject"),
    ];
}
identity_serde!(ForwardingAction);
