//! CoAP for DOTS: RFC 7252 datagrams (over DTLS), RFC 8323 streams (over
//! TLS), options (incl. Observe RFC 7641, Block1/2 RFC 7959, Hop-Limit
//! RFC 8768, Request-Tag RFC 9175), and the sans-IO reliability helpers.
//!
//! Why our own codec rather than `coap-lite` (0.13.3, reviewed when this was
//! written): its decoder does not check the version, accepts a payload
//! marker followed by no payload (RFC 7252 says format error), reports
//! errors without the header needed to RST a CON, and its option parsing is
//! tied to its datagram `Packet`, so the RFC 8323 framing could not reuse it.
//! The codec is small; owning it lets every error be typed as DOTS needs.
//!
//! Layout: [`code`] codes, [`option`] option numbers and the option codec,
//! [`message`] the message model and typed accessors, [`datagram`] and
//! [`stream`] the two framings, [`signaling`] 7.xx messages, [`block`]
//! block-wise transfer, [`reliability`] timers/ids/dedup, [`observe`].
//!
//! A datagram server's receive path, as a sketch of how the pieces fit:
//!
//! ```
//! use std::time::Instant;
//! use dots_proto::coap::{datagram, Code, Dedup, Message, MessageIdGen, MessageType, Seen, Token, TransmissionParams};
//!
//! let mut dedup = Dedup::new(&TransmissionParams::default(), 10_000);
//! let mut ids = MessageIdGen::new(0x4d2);
//! let peer = "192.0.2.1:50000";
//!
//! let mut req = Message::request(Code::GET, MessageType::Con, 0x1234, Token::new(&[7]).unwrap());
//! req.set_uri_path("/.well-known/dots/mitigate/cuid=x");
//! let wire = datagram::encode(&req).unwrap();
//!
//! let reply: Option<Vec<u8>> = match datagram::decode(&wire) {
//!     // Format error: RST a CON, silently drop anything else.
//!     Err(e) => e.reset().map(|rst| datagram::encode(&rst).unwrap()),
//!     Ok(msg) => match dedup.check(peer, msg.message_id, msg.mtype, Instant::now()) {
//!         Seen::Duplicate(cached) => cached.map(<[u8]>::to_vec),
//!         Seen::New => {
//!             let code = if msg.first_bad_critical_option().is_some() { Code::BAD_OPTION } else { Code::CONTENT };
//!             let resp = datagram::encode(&Message::response_to(&msg, code, &mut ids)).unwrap();
//!             dedup.record_response(peer, msg.message_id, resp.clone());
//!             Some(resp)
//!         }
//!     },
//! };
//! let resp = datagram::decode(&reply.unwrap()).unwrap();
//! assert_eq!((resp.mtype, resp.code, resp.message_id), (MessageType::Ack, Code::CONTENT, 0x1234));
//! ```

pub mod block;
pub mod code;
pub mod datagram;
pub mod error;
pub mod message;
pub mod observe;
pub mod option;
pub mod reliability;
pub mod signaling;
pub mod stream;

pub use block::{block2_slice, Block1Assembler, Block1Error, Block1Progress, Block2Collector, Block2Step, BlockOpt};
pub use code::Code;
pub use datagram::{DatagramError, Header};
pub use error::{EncodeError, FormatError};
pub use message::{content_format, Message, MessageType, Token};
pub use observe::{ObserveFreshness, ObserveSequence};
pub use option::{CoapOption, OptionNumber, Options};
pub use reliability::{Dedup, MessageIdGen, RetransmitAction, Retransmission, Seen, TokenGen, TransmissionParams};
pub use signaling::{Signal, SignalError};
pub use stream::{StreamDecoder, StreamError};
