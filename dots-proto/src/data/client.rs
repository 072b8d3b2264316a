//! DOTS client registration (RFC 8783 draft 29, §5): the `dots-client`
//! list of the `dots-data` container.

use serde::{Deserialize, Serialize};

use crate::data::acl::Acls;
use crate::data::alias::Aliases;
use crate::data::capabilities::Capabilities;

/// Body `{"ietf-dots-data-channel:dots-client": [...]}` (Figures 11–14).
/// A registration carries exactly one entry (§5.1); that is checked by
/// [`crate::data::validate::validate_registration`], not here, so that a
/// GET response listing several clients still decodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DotsClientBody {
    #[serde(rename = "ietf-dots-data-channel:dots-client")]
    pub dots_client: Vec<DotsClient>,
}

/// One `dots-client` entry (key `cuid`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DotsClient {
    /// Client unique identifier; mandatory (400 `missing-attribute` if absent).
    pub cuid: String,
    /// Client domain identifier, inserted by a server-domain gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Aliases>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acls: Option<Acls>,
}

/// Body `{"ietf-dots-data-channel:dots-data": {...}}`: the whole tree, as a
/// GET on the top-level container returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DotsDataBody {
    #[serde(rename = "ietf-dots-data-channel:dots-data")]
    pub dots_data: DotsData,
}

/// The `dots-data` container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DotsData {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dots_client: Vec<DotsClient>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}
