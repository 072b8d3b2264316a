//! 'ietf-dots-signal-channel:heartbeat' (section 4.7).

use super::error::SignalError;
use super::keys::id;
use super::tree::{Fields, MapBuilder, Node};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Whether the sender received heartbeats from its peer in the last
    /// 2 * heartbeat-interval. Mandatory.
    pub peer_hb_status: bool,
}

impl Heartbeat {
    pub(crate) fn from_node(n: Node) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::HEARTBEAT, n)?;
        let peer_hb_status =
            f.boolean(id::PEER_HB_STATUS)?.ok_or(SignalError::MissingAttribute { field: "peer-hb-status" })?;
        f.finish()?;
        Ok(Heartbeat { peer_hb_status })
    }

    pub(crate) fn to_node(self) -> Node {
        MapBuilder::new().put(id::PEER_HB_STATUS, Node::Bool(self.peer_hb_status)).build()
    }
}
