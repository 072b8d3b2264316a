//! Table 5 (section 6): the CBOR key, YANG name and type of every signal
//! channel attribute. Both codecs (CBOR and JSON) are driven by this table,
//! so a key number or name is written down exactly once.

/// Attribute ids: the CBOR keys of Table 5.
pub mod id {
    pub const MITIGATION_SCOPE: u16 = 1;
    pub const SCOPE: u16 = 2;
    pub const CDID: u16 = 3;
    pub const CUID: u16 = 4;
    pub const MID: u16 = 5;
    pub const TARGET_PREFIX: u16 = 6;
    pub const TARGET_PORT_RANGE: u16 = 7;
    pub const LOWER_PORT: u16 = 8;
    pub const UPPER_PORT: u16 = 9;
    pub const TARGET_PROTOCOL: u16 = 10;
    pub const TARGET_FQDN: u16 = 11;
    pub const TARGET_URI: u16 = 12;
    pub const ALIAS_NAME: u16 = 13;
    pub const LIFETIME: u16 = 14;
    pub const MITIGATION_START: u16 = 15;
    pub const STATUS: u16 = 16;
    pub const CONFLICT_INFORMATION: u16 = 17;
    pub const CONFLICT_STATUS: u16 = 18;
    pub const CONFLICT_CAUSE: u16 = 19;
    pub const RETRY_TIMER: u16 = 20;
    pub const CONFLICT_SCOPE: u16 = 21;
    pub const ACL_LIST: u16 = 22;
    pub const ACL_NAME: u16 = 23;
    pub const ACL_TYPE: u16 = 24;
    pub const BYTES_DROPPED: u16 = 25;
    pub const BPS_DROPPED: u16 = 26;
    pub const PKTS_DROPPED: u16 = 27;
    pub const PPS_DROPPED: u16 = 28;
    pub const ATTACK_STATUS: u16 = 29;
    pub const SIGNAL_CONFIG: u16 = 30;
    pub const SID: u16 = 31;
    pub const MITIGATING_CONFIG: u16 = 32;
    pub const HEARTBEAT_INTERVAL: u16 = 33;
    pub const MAX_VALUE: u16 = 34;
    pub const MIN_VALUE: u16 = 35;
    pub const CURRENT_VALUE: u16 = 36;
    pub const MISSING_HB_ALLOWED: u16 = 37;
    pub const MAX_RETRANSMIT: u16 = 38;
    pub const ACK_TIMEOUT: u16 = 39;
    pub const ACK_RANDOM_FACTOR: u16 = 40;
    pub const MAX_VALUE_DECIMAL: u16 = 41;
    pub const MIN_VALUE_DECIMAL: u16 = 42;
    pub const CURRENT_VALUE_DECIMAL: u16 = 43;
    pub const IDLE_CONFIG: u16 = 44;
    pub const TRIGGER_MITIGATION: u16 = 45;
    pub const REDIRECTED_SIGNAL: u16 = 46;
    pub const ALT_SERVER: u16 = 47;
    pub const ALT_SERVER_RECORD: u16 = 48;
    pub const HEARTBEAT: u16 = 49;
    pub const PROBING_RATE: u16 = 50;
    pub const PEER_HB_STATUS: u16 = 51;
    /// RFC 9133 (signal-channel control of filtering), whose text is not
    /// in shared/reference: the keys IANA registered for it, as the public
    /// implementation nttdots/go-dots uses them
    /// (dots_common/messages/signal.go).
    pub const ACTIVATION_TYPE: u16 = 52;
    pub const CONTROL_ACL_LIST: u16 = 53;
}

/// How a JSON encoder writes an unsigned number (Table 5's "JSON Type").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonNum {
    Number,
    /// 64-bit quantities and some others are JSON strings (RFC 7951, 6.1).
    String,
}

/// Element type of a YANG list or leaf-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Container,
    Text,
    Uint(u64),
}

/// The value type of an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    List(Elem),
    Uint { max: u64, json: JsonNum },
    /// uint32 or the single negative value -1 (section 4.4.1.1).
    Lifetime,
    Text,
    Bool,
    /// decimal64 with fraction-digits 2, CBOR tag 4 [-2, mantissa].
    Decimal,
    /// An IANA enumeration: CBOR unsigned, JSON label string.
    Enum(&'static [(u64, &'static str)]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDef {
    pub id: u16,
    pub name: &'static str,
    pub kind: Kind,
}

/// Labels of section 10.6.2 (Table 7).
pub const STATUS_LABELS: &[(u64, &str)] = &[
    (1, "attack-mitigation-in-progress"),
    (2, "attack-successfully-mitigated"),
    (3, "attack-stopped"),
    (4, "attack-exceeded-capability"),
    (5, "dots-client-withdrawn-mitigation"),
    (6, "attack-mitigation-terminated"),
    (7, "attack-mitigation-withdrawn"),
    (8, "attack-mitigation-signal-loss"),
];
/// Labels of section 10.6.3 (Table 8).
pub const CONFLICT_STATUS_LABELS: &[(u64, &str)] = &[
    (1, "request-inactive-other-active"),
    (2, "request-active"),
    (3, "all-requests-inactive"),
];
/// Labels of section 10.6.4 (Table 9).
pub const CONFLICT_CAUSE_LABELS: &[(u64, &str)] = &[
    (1, "overlapping-targets"),
    (2, "conflict-with-acceptlist"),
    (3, "cuid-collision"),
];
/// RFC 9133 'activation-type' (the same enumeration as RFC 8783's, 7.2),
/// carried as an unsigned in CBOR and as the label in JSON.
pub const ACTIVATION_TYPE_LABELS: &[(u64, &str)] =
    &[(1, "activate-when-mitigating"), (2, "immediate"), (3, "deactivate")];
/// Labels of section 10.6.5 (Table 10).
pub const ATTACK_STATUS_LABELS: &[(u64, &str)] =
    &[(1, "under-attack"), (2, "attack-successfully-mitigated")];

const U8: u64 = u8::MAX as u64;
const U16: u64 = u16::MAX as u64;
const U32: u64 = u32::MAX as u64;
const U64: u64 = u64::MAX;

const fn def(id: u16, name: &'static str, kind: Kind) -> KeyDef {
    KeyDef { id, name, kind }
}
const fn num(max: u64) -> Kind {
    Kind::Uint { max, json: JsonNum::Number }
}
const fn strnum(max: u64) -> Kind {
    Kind::Uint { max, json: JsonNum::String }
}

/// Table 5, in key order (index = key - 1).
pub const TABLE: &[KeyDef] = &[
    def(1, "ietf-dots-signal-channel:mitigation-scope", Kind::Container),
    def(2, "scope", Kind::List(Elem::Container)),
    def(3, "cdid", Kind::Text),
    def(4, "cuid", Kind::Text),
    def(5, "mid", num(U32)),
    def(6, "target-prefix", Kind::List(Elem::Text)),
    def(7, "target-port-range", Kind::List(Elem::Container)),
    def(8, "lower-port", num(U16)),
    def(9, "upper-port", num(U16)),
    def(10, "target-protocol", Kind::List(Elem::Uint(U8))),
    def(11, "target-fqdn", Kind::List(Elem::Text)),
    def(12, "target-uri", Kind::List(Elem::Text)),
    def(13, "alias-name", Kind::List(Elem::Text)),
    def(14, "lifetime", Kind::Lifetime),
    def(15, "mitigation-start", strnum(U64)),
    def(16, "status", Kind::Enum(STATUS_LABELS)),
    def(17, "conflict-information", Kind::Container),
    def(18, "conflict-status", Kind::Enum(CONFLICT_STATUS_LABELS)),
    def(19, "conflict-cause", Kind::Enum(CONFLICT_CAUSE_LABELS)),
    // Table 5 says JSON "String" for this uint32, unlike RFC 7951; we
    // follow the table when encoding and accept both when decoding.
    def(20, "retry-timer", strnum(U32)),
    def(21, "conflict-scope", Kind::Container),
    def(22, "acl-list", Kind::List(Elem::Container)),
    def(23, "acl-name", Kind::Text),
    def(24, "acl-type", Kind::Text),
    def(25, "bytes-dropped", strnum(U64)),
    def(26, "bps-dropped", strnum(U64)),
    def(27, "pkts-dropped", strnum(U64)),
    def(28, "pps-dropped", strnum(U64)),
    def(29, "attack-status", Kind::Enum(ATTACK_STATUS_LABELS)),
    def(30, "ietf-dots-signal-channel:signal-config", Kind::Container),
    def(31, "sid", num(U32)),
    def(32, "mitigating-config", Kind::Container),
    def(33, "heartbeat-interval", Kind::Container),
    def(34, "max-value", num(U16)),
    def(35, "min-value", num(U16)),
    def(36, "current-value", num(U16)),
    def(37, "missing-hb-allowed", Kind::Container),
    def(38, "max-retransmit", Kind::Container),
    def(39, "ack-timeout", Kind::Container),
    def(40, "ack-random-factor", Kind::Container),
    def(41, "max-value-decimal", Kind::Decimal),
    def(42, "min-value-decimal", Kind::Decimal),
    def(43, "current-value-decimal", Kind::Decimal),
    def(44, "idle-config", Kind::Container),
    def(45, "trigger-mitigation", Kind::Bool),
    def(46, "ietf-dots-signal-channel:redirected-signal", Kind::Container),
    def(47, "alt-server", Kind::Text),
    def(48, "alt-server-record", Kind::List(Elem::Text)),
    def(49, "ietf-dots-signal-channel:heartbeat", Kind::Container),
    def(50, "probing-rate", Kind::Container),
    def(51, "peer-hb-status", Kind::Bool),
    // RFC 9133 (see id::ACTIVATION_TYPE); an entry of 53 names its ACL
    // with 'acl-name', key 23.
    def(52, "activation-type", Kind::Enum(ACTIVATION_TYPE_LABELS)),
    def(53, "ietf-dots-signal-control:acl-list", Kind::List(Elem::Container)),
];

/// Pseudo-id of the message body (the map holding the top-level container).
pub const BODY: u16 = 0;

/// The entry for a CBOR key, if this implementation knows it.
pub fn by_id(id: u16) -> Option<&'static KeyDef> {
    let d = TABLE.get(usize::from(id).checked_sub(1)?)?;
    debug_assert_eq!(d.id, id);
    Some(d)
}

/// The entry for a JSON member name.
pub fn by_name(name: &str) -> Option<&'static KeyDef> {
    TABLE.iter().find(|d| d.name == name)
}

/// The YANG name of a known id (for diagnostics).
pub fn name(id: u16) -> &'static str {
    if id == BODY {
        return "message body";
    }
    by_id(id).map_or("?", |d| d.name)
}

/// Section 10.6.1.1 (NEW table) and section 3.1: 128-255 and 16384-65535
/// are comprehension-optional; 1-127 and 256-16383 comprehension-required.
pub fn is_comprehension_optional(key: u16) -> bool {
    matches!(key, 128..=255 | 16384..=65535)
}

/// Label of an enumeration value.
pub fn label(labels: &'static [(u64, &'static str)], v: u64) -> Option<&'static str> {
    labels.iter().find(|(n, _)| *n == v).map(|(_, l)| *l)
}

/// Value of an enumeration label.
pub fn value_of(labels: &'static [(u64, &'static str)], l: &str) -> Option<u64> {
    labels.iter().find(|(_, s)| *s == l).map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_dense_and_ordered() {
        for (i, d) in TABLE.iter().enumerate() {
            assert_eq!(usize::from(d.id), i + 1, "{}", d.name);
        }
        assert_eq!(by_id(34).unwrap().name, "max-value");
        assert_eq!(by_id(35).unwrap().name, "min-value");
        assert_eq!(by_id(41).unwrap().name, "max-value-decimal");
        assert_eq!(by_id(42).unwrap().name, "min-value-decimal");
        assert_eq!(by_id(53).unwrap().name, "ietf-dots-signal-control:acl-list");
        assert!(by_id(0).is_none() && by_id(54).is_none());
    }

    #[test]
    fn comprehension_ranges() {
        assert!(!is_comprehension_optional(1));
        assert!(!is_comprehension_optional(127));
        assert!(is_comprehension_optional(128));
        assert!(is_comprehension_optional(255));
        assert!(!is_comprehension_optional(256));
        assert!(!is_comprehension_optional(16383));
        assert!(is_comprehension_optional(16384));
        assert!(is_comprehension_optional(65535));
    }
}
