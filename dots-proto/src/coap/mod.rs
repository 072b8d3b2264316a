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
