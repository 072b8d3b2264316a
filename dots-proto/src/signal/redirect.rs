//! 'ietf-dots-signal-channel:redirected-signal' (section 4.6), the body of
//! a 5.03 response. The TTL of the alternate server is not in the body:
//! it travels in the Max-Age Option (2^32-1 = infinite, 0 = this request
//! only), so the CoAP layer carries it next to this value.

use std::net::IpAddr;

use super::error::SignalError;
use super::keys::id;
use super::tree::{Fields, MapBuilder, Node};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectedSignal {
    /// FQDN of the alternate server. Mandatory.
    pub alt_server: String,
    pub alt_server_record: Vec<IpAddr>,
}

impl RedirectedSignal {
    pub(crate) fn from_node(n: Node) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::REDIRECTED_SIGNAL, n)?;
        let alt_server = f.text(id::ALT_SERVER)?.ok_or(SignalError::MissingAttribute { field: "alt-server" })?;
        let records = f.texts(id::ALT_SERVER_RECORD)?;
        f.finish()?;
        let alt_server_record = records
            .into_iter()
            .map(|s| {
                s.parse().map_err(|_| SignalError::InvalidValue {
                    field: "alt-server-record",
                    value: s,
                    reason: "not an IP address",
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(RedirectedSignal { alt_server, alt_server_record })
    }

    pub(crate) fn to_node(&self) -> Node {
        let records: Vec<String> = self.alt_server_record.iter().map(|a| a.to_string()).collect();
        MapBuilder::new().put(id::ALT_SERVER, Node::Text(self.alt_server.clone())).texts(id::ALT_SERVER_RECORD, &records).build()
    }
}
