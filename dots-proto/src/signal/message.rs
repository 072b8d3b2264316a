//! A whole signal-channel body: exactly one of the four message types of
//! the YANG 'message-type' choice (section 5.1), in CBOR or JSON.

use super::cbor;
use super::config::SignalConfig;
use super::error::{Decoded, SignalError};
use super::heartbeat::Heartbeat;
use super::json;
use super::keys::{self, id};
use super::mitigation::MitigationScope;
use super::redirect::RedirectedSignal;
use super::tree::{MapBuilder, Node};

// A config is ~300 bytes on the stack; messages are short-lived values,
// so boxing it is not worth the noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalMessage {
    MitigationScope(MitigationScope),
    SignalConfig(SignalConfig),
    RedirectedSignal(RedirectedSignal),
    Heartbeat(Heartbeat),
}

impl SignalMessage {
    /// Decodes an `application/dots+cbor` body.
    pub fn from_cbor(bytes: &[u8]) -> Result<Decoded<Self>, SignalError> {
        Self::from_node(cbor::decode(bytes)?)
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&self.to_node())
    }

    /// Decodes the RFC 7951 JSON form used by the text's figures.
    pub fn from_json(text: &str) -> Result<Decoded<Self>, SignalError> {
        Self::from_node(json::decode(text)?)
    }

    pub fn to_json(&self) -> serde_json::Value {
        json::encode(&self.to_node())
    }

    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).expect("JSON values always serialize")
    }

    fn from_node(body: Node) -> Result<Decoded<Self>, SignalError> {
        let Node::Map(members) = body else { return Err(SignalError::NoMessage) };
        let mut members = members.into_iter();
        let (key, node) = members.next().ok_or(SignalError::NoMessage)?;
        if members.next().is_some() {
            return Err(SignalError::MultipleMessages);
        }
        let mut warnings = Vec::new();
        let value = match key {
            id::MITIGATION_SCOPE => SignalMessage::MitigationScope(MitigationScope::from_node(node)?),
            id::SIGNAL_CONFIG => SignalMessage::SignalConfig(SignalConfig::from_node(node, &mut warnings)?),
            id::REDIRECTED_SIGNAL => SignalMessage::RedirectedSignal(RedirectedSignal::from_node(node)?),
            id::HEARTBEAT => SignalMessage::Heartbeat(Heartbeat::from_node(node)?),
            k => {
                return Err(SignalError::UnexpectedAttribute { field: keys::name(k), parent: keys::name(keys::BODY) })
            }
        };
        Ok(Decoded { value, warnings })
    }

    fn to_node(&self) -> Node {
        let (key, inner) = match self {
            SignalMessage::MitigationScope(m) => (id::MITIGATION_SCOPE, m.to_node()),
            SignalMessage::SignalConfig(c) => (id::SIGNAL_CONFIG, c.to_node()),
            SignalMessage::RedirectedSignal(r) => (id::REDIRECTED_SIGNAL, r.to_node()),
            SignalMessage::Heartbeat(h) => (id::HEARTBEAT, h.to_node()),
        };
        MapBuilder::new().put(key, inner).build()
    }
}

/// Typed access to one message type: `MitigationScope::from_cbor(bytes)`
/// refuses a body holding another message type.
pub trait SignalBody: Sized + Clone {
    const NAME: &'static str;
    fn wrap(self) -> SignalMessage;
    fn unwrap_message(m: SignalMessage) -> Option<Self>;

    fn from_cbor(bytes: &[u8]) -> Result<Decoded<Self>, SignalError> {
        narrow(SignalMessage::from_cbor(bytes)?)
    }
    fn from_json(text: &str) -> Result<Decoded<Self>, SignalError> {
        narrow(SignalMessage::from_json(text)?)
    }
    fn to_cbor(&self) -> Vec<u8> {
        self.clone().wrap().to_cbor()
    }
    fn to_json(&self) -> serde_json::Value {
        self.clone().wrap().to_json()
    }
}

fn narrow<T: SignalBody>(d: Decoded<SignalMessage>) -> Result<Decoded<T>, SignalError> {
    let value = T::unwrap_message(d.value).ok_or(SignalError::WrongMessage { expected: T::NAME })?;
    Ok(Decoded { value, warnings: d.warnings })
}

macro_rules! body {
    ($t:ident, $name:literal) => {
        impl SignalBody for $t {
            const NAME: &'static str = $name;
            fn wrap(self) -> SignalMessage {
                SignalMessage::$t(self)
            }
            fn unwrap_message(m: SignalMessage) -> Option<Self> {
                match m {
                    SignalMessage::$t(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

body!(MitigationScope, "ietf-dots-signal-channel:mitigation-scope");
body!(SignalConfig, "ietf-dots-signal-channel:signal-config");
body!(RedirectedSignal, "ietf-dots-signal-channel:redirected-signal");
body!(Heartbeat, "ietf-dots-signal-channel:heartbeat");
