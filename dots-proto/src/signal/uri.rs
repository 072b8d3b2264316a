//! Signal-channel resources (Table 1, section 4.2): the Uri-Path segments
//! after "/.well-known/dots", as split by the CoAP layer, and the 'c'
//! Uri-Query of GET (Table 2, section 4.4.2).

use std::fmt;

use super::error::SignalError;

pub const WELL_KNOWN: &str = ".well-known";
pub const DOTS: &str = "dots";

/// Which resource a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalPath {
    /// `/mitigate[/cdid=..]/cuid=..[/mid=..]`
    Mitigate(MitigatePath),
    /// `/config[/sid=..]`
    Config { sid: Option<u32> },
    /// `/hb`
    Heartbeat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigatePath {
    /// Inserted by server-domain gateways only; "MUST be positioned before
    /// 'cuid'" (section 4.4.1.2).
    pub cdid: Option<String>,
    /// "a mandatory Uri-Path parameter" (sections 4.4.1.1, 4.4.2, 4.4.4).
    pub cuid: String,
    /// Absent in a GET of all mitigations; "'mid' MUST follow 'cuid'".
    pub mid: Option<u32>,
}

impl MitigatePath {
    /// PUT and DELETE need a mid (sections 4.4.1.3 and 4.4.4).
    pub fn require_mid(&self) -> Result<u32, SignalError> {
        self.mid.ok_or(SignalError::MissingUriParam { param: "mid" })
    }
}

impl SignalPath {
    /// Parses the Uri-Path segments, e.g.
    /// `[".well-known", "dots", "mitigate", "cuid=abc", "mid=123"]`.
    pub fn parse(segments: &[&str]) -> Result<Self, SignalError> {
        let unknown = || SignalError::UnknownResource { path: format!("/{}", segments.join("/")) };
        let [WELL_KNOWN, DOTS, op, params @ ..] = segments else { return Err(unknown()) };
        match *op {
            "mitigate" => parse_mitigate(params).map(SignalPath::Mitigate),
            "config" => parse_config(params),
            "hb" => match params.first() {
                // "MUST NOT have a 'cuid', 'cdid', or 'mid' Uri-Path" (4.7).
                Some(s) => Err(SignalError::UnexpectedUriPath { segment: s.to_string() }),
                None => Ok(SignalPath::Heartbeat),
            },
            _ => Err(unknown()),
        }
    }

    /// The Uri-Path segments of this resource.
    pub fn to_segments(&self) -> Vec<String> {
        let mut v = vec![WELL_KNOWN.to_string(), DOTS.to_string()];
        match self {
            SignalPath::Mitigate(m) => {
                v.push("mitigate".into());
                v.extend(m.cdid.as_ref().map(|c| format!("cdid={c}")));
                v.push(format!("cuid={}", m.cuid));
                v.extend(m.mid.map(|m| format!("mid={m}")));
            }
            SignalPath::Config { sid } => {
                v.push("config".into());
                v.extend(sid.map(|s| format!("sid={s}")));
            }
            SignalPath::Heartbeat => v.push("hb".into()),
        }
        v
    }
}

impl fmt::Display for SignalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in self.to_segments() {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

/// Splits `name=value`, refusing "Uri-Path parameters with empty values".
fn param<'a>(segment: &'a str, name: &'static str) -> Result<Option<&'a str>, SignalError> {
    match segment.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
        None => Ok(None),
        Some("") => Err(SignalError::EmptyUriParam { param: name }),
        Some(v) => Ok(Some(v)),
    }
}

fn number(v: &str, name: &'static str) -> Result<u32, SignalError> {
    // Plain decimal digits only: u32::from_str would also take "+1".
    if v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignalError::InvalidUriParam { param: name, value: v.to_string() });
    }
    v.parse().map_err(|_| SignalError::InvalidUriParam { param: name, value: v.to_string() })
}

fn parse_mitigate(params: &[&str]) -> Result<MitigatePath, SignalError> {
    let mut rest = params;
    let mut cdid = None;
    if let Some(first) = rest.first() {
        if let Some(v) = param(first, "cdid")? {
            cdid = Some(v.to_string());
            rest = &rest[1..];
        }
    }
    let Some(first) = rest.first() else { return Err(SignalError::MissingUriParam { param: "cuid" }) };
    let cuid = param(first, "cuid")?.ok_or(SignalError::MissingUriParam { param: "cuid" })?.to_string();
    let mid = match rest.get(1) {
        None => None,
        Some(s) => Some(number(
            param(s, "mid")?.ok_or_else(|| SignalError::UnexpectedUriPath { segment: s.to_string() })?,
            "mid",
        )?),
    };
    if let Some(extra) = rest.get(2) {
        return Err(SignalError::UnexpectedUriPath { segment: extra.to_string() });
    }
    Ok(MitigatePath { cdid, cuid, mid })
}

fn parse_config(params: &[&str]) -> Result<SignalPath, SignalError> {
    // "the 'cuid' Uri-Path MUST NOT be used" (section 4.5.2).
    match params {
        [] => Ok(SignalPath::Config { sid: None }),
        [s] => match param(s, "sid")? {
            Some(v) => Ok(SignalPath::Config { sid: Some(number(v, "sid")?) }),
            None => Err(SignalError::UnexpectedUriPath { segment: s.to_string() }),
        },
        [_, extra, ..] => Err(SignalError::UnexpectedUriPath { segment: extra.to_string() }),
    }
}

/// The 'c' (content) Uri-Query of a GET (Table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Content {
    /// c=c: configuration data only.
    Config,
    /// c=n: non-configuration data (status, counters) only.
    NonConfig,
    /// c=a: everything, the default.
    #[default]
    All,
}

impl Content {
    /// From the Uri-Query options; other queries are left to the caller.
    pub fn from_queries(queries: &[&str]) -> Result<Self, SignalError> {
        let mut found = None;
        for q in queries.iter().filter(|q| q.starts_with("c=")) {
            let c = match *q {
                "c=c" => Content::Config,
                "c=n" => Content::NonConfig,
                "c=a" => Content::All,
                _ => return Err(SignalError::InvalidQuery { query: q.to_string() }),
            };
            if found.replace(c).is_some() {
                return Err(SignalError::InvalidQuery { query: q.to_string() });
            }
        }
        Ok(found.unwrap_or_default())
    }

    pub fn as_query(self) -> &'static str {
        match self {
            Content::Config => "c=c",
            Content::NonConfig => "c=n",
            Content::All => "c=a",
        }
    }
}
