//! RFC 8323 §5 signaling messages (7.01 CSM, 7.02 Ping, 7.03 Pong,
//! 7.04 Release, 7.05 Abort) as a typed enum over [`Message`]. Signaling
//! option numbers are scoped to their code, so they are not the request
//! option numbers of [`OptionNumber`]'s constants.

use super::code::Code;
use super::message::{Message, MessageType, Token};
use super::option::{decode_uint, encode_uint, OptionNumber};

/// CSM 7.01 options.
pub const MAX_MESSAGE_SIZE: OptionNumber = OptionNumber(2);
pub const BLOCK_WISE_TRANSFER: OptionNumber = OptionNumber(4);
/// Ping 7.02 / Pong 7.03 option.
pub const CUSTODY: OptionNumber = OptionNumber(2);
/// Release 7.04 options.
pub const ALTERNATIVE_ADDRESS: OptionNumber = OptionNumber(2);
pub const HOLD_OFF: OptionNumber = OptionNumber(4);
/// Abort 7.05 option.
pub const BAD_CSM_OPTION: OptionNumber = OptionNumber(2);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    Csm { max_message_size: Option<u32>, block_wise_transfer: bool },
    Ping { custody: bool },
    Pong { custody: bool },
    /// `diagnostic` is the optional UTF-8 diagnostic payload.
    Release { alternative_addresses: Vec<String>, hold_off: Option<u32>, diagnostic: String },
    Abort { bad_csm_option: Option<u16>, diagnostic: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error("code {0} is not a signaling code")]
    NotSignaling(Code),
    /// Unknown critical (odd) signaling option: RFC 8323 §5.3 says to
    /// Abort (with Bad-CSM-Option for a CSM).
    #[error("unsupported critical signaling option {}", .0 .0)]
    UnknownCriticalOption(OptionNumber),
    #[error("malformed value of signaling option {}", .0 .0)]
    BadOptionValue(OptionNumber),
    #[error("diagnostic payload is not UTF-8")]
    BadDiagnostic,
}

impl Signal {
    pub fn code(&self) -> Code {
        match self {
            Signal::Csm { .. } => Code::CSM,
            Signal::Ping { .. } => Code::PING,
            Signal::Pong { .. } => Code::PONG,
            Signal::Release { .. } => Code::RELEASE,
            Signal::Abort { .. } => Code::ABORT,
        }
    }

    /// The message for this signal (Pong should carry the Ping's token).
    pub fn to_message(&self, token: Token) -> Message {
        let mut m = Message::new(MessageType::Non, self.code(), 0, token);
        match self {
            Signal::Csm { max_message_size, block_wise_transfer } => {
                if let Some(n) = max_message_size {
                    m.options.set(MAX_MESSAGE_SIZE, encode_uint(*n));
                }
                flag(&mut m, BLOCK_WISE_TRANSFER, *block_wise_transfer);
            }
            Signal::Ping { custody } | Signal::Pong { custody } => flag(&mut m, CUSTODY, *custody),
            Signal::Release { alternative_addresses, hold_off, diagnostic } => {
                for a in alternative_addresses {
                    m.options.push(ALTERNATIVE_ADDRESS, a.as_bytes().to_vec());
                }
                if let Some(h) = hold_off {
                    m.options.set(HOLD_OFF, encode_uint(*h));
                }
                m.payload = diagnostic.as_bytes().to_vec();
            }
            Signal::Abort { bad_csm_option, diagnostic } => {
                if let Some(n) = bad_csm_option {
                    m.options.set(BAD_CSM_OPTION, encode_uint(u32::from(*n)));
                }
                m.payload = diagnostic.as_bytes().to_vec();
            }
        }
        m
    }

    /// Pong answering `ping` (same token).
    pub fn pong_for(ping: &Message) -> Message {
        Signal::Pong { custody: false }.to_message(ping.token)
    }

    /// Interprets a 7.xx message. Unknown elective options are ignored.
    pub fn from_message(m: &Message) -> Result<Signal, SignalError> {
        let known: &[OptionNumber] = match m.code {
            Code::CSM => &[MAX_MESSAGE_SIZE, BLOCK_WISE_TRANSFER],
            Code::PING | Code::PONG => &[CUSTODY],
            Code::RELEASE => &[ALTERNATIVE_ADDRESS, HOLD_OFF],
            Code::ABORT => &[BAD_CSM_OPTION],
            c => return Err(SignalError::NotSignaling(c)),
        };
        if let Some(o) = m.options.iter().find(|o| o.number.is_critical() && !known.contains(&o.number)) {
            return Err(SignalError::UnknownCriticalOption(o.number));
        }
        match m.code {
            Code::CSM => Ok(Signal::Csm {
                max_message_size: uint(m, MAX_MESSAGE_SIZE)?,
                block_wise_transfer: m.options.get(BLOCK_WISE_TRANSFER).is_some(),
            }),
            Code::PING => Ok(Signal::Ping { custody: m.options.get(CUSTODY).is_some() }),
            Code::PONG => Ok(Signal::Pong { custody: m.options.get(CUSTODY).is_some() }),
            Code::RELEASE => Ok(Signal::Release {
                alternative_addresses: alt_addresses(m)?,
                hold_off: uint(m, HOLD_OFF)?,
                diagnostic: diagnostic(m)?,
            }),
            _ => Ok(Signal::Abort {
                bad_csm_option: uint(m, BAD_CSM_OPTION)?
                    .map(|v| u16::try_from(v).map_err(|_| SignalError::BadOptionValue(BAD_CSM_OPTION)))
                    .transpose()?,
                diagnostic: diagnostic(m)?,
            }),
        }
    }
}

fn flag(m: &mut Message, n: OptionNumber, on: bool) {
    if on {
        m.options.set(n, Vec::new());
    }
}

fn uint(m: &Message, n: OptionNumber) -> Result<Option<u32>, SignalError> {
    m.options.get(n).map(|v| decode_uint(v).ok_or(SignalError::BadOptionValue(n))).transpose()
}

fn alt_addresses(m: &Message) -> Result<Vec<String>, SignalError> {
    m.options
        .all(ALTERNATIVE_ADDRESS)
        .map(|v| String::from_utf8(v.to_vec()).map_err(|_| SignalError::BadOptionValue(ALTERNATIVE_ADDRESS)))
        .collect()
}

fn diagnostic(m: &Message) -> Result<String, SignalError> {
    String::from_utf8(m.payload.clone()).map_err(|_| SignalError::BadDiagnostic)
}
