//! 'ietf-dots-signal-channel:signal-config' (section 4.5): session
//! configuration, discovered with GET and set with PUT.

use super::decimal::Decimal;
use super::error::{SignalError, Warning};
use super::keys::{self, id};
use super::tree::{Fields, MapBuilder, Node};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignalConfig {
    /// Key 31 is in Table 5 but section 4.5.2 puts 'sid' in the URI; "the
    /// response does not need to include 'sid' in its message body".
    pub sid: Option<u32>,
    pub mitigating_config: Option<ConfigParameters>,
    pub idle_config: Option<ConfigParameters>,
}

/// The 'config-parameters' grouping (section 5.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigParameters {
    pub heartbeat_interval: Option<IntParam>,
    pub missing_hb_allowed: Option<IntParam>,
    pub probing_rate: Option<IntParam>,
    pub max_retransmit: Option<IntParam>,
    pub ack_timeout: Option<DecimalParam>,
    pub ack_random_factor: Option<DecimalParam>,
}

/// A uint16 parameter. max/min are server-to-client only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntParam {
    pub max_value: Option<u16>,
    pub min_value: Option<u16>,
    pub current_value: Option<u16>,
}

/// A decimal64 parameter (fraction-digits 2). max/min server-to-client only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecimalParam {
    pub max_value_decimal: Option<Decimal>,
    pub min_value_decimal: Option<Decimal>,
    pub current_value_decimal: Option<Decimal>,
}

impl IntParam {
    pub const fn range(min: u16, max: u16, current: u16) -> Self {
        IntParam { max_value: Some(max), min_value: Some(min), current_value: Some(current) }
    }
    pub const fn current(v: u16) -> Self {
        IntParam { max_value: None, min_value: None, current_value: Some(v) }
    }
}

impl DecimalParam {
    pub const fn range(min: Decimal, max: Decimal, current: Decimal) -> Self {
        DecimalParam {
            max_value_decimal: Some(max),
            min_value_decimal: Some(min),
            current_value_decimal: Some(current),
        }
    }
    pub const fn current(v: Decimal) -> Self {
        DecimalParam { max_value_decimal: None, min_value_decimal: None, current_value_decimal: Some(v) }
    }
}

/// The defaults of the YANG module (section 5.3) and of section 4.5.2:
/// heartbeat-interval 30 s, missing-hb-allowed 15, probing-rate 5 byte/s,
/// max-retransmit 3, ack-timeout 2.00 s, ack-random-factor 1.50. The same
/// grouping (and defaults) serves mitigating-config and idle-config.
pub mod defaults {
    use super::Decimal;
    pub const HEARTBEAT_INTERVAL: u16 = 30;
    pub const MISSING_HB_ALLOWED: u16 = 15;
    pub const PROBING_RATE: u16 = 5;
    pub const MAX_RETRANSMIT: u16 = 3;
    pub const ACK_TIMEOUT: Decimal = Decimal::from_hundredths(200);
    pub const ACK_RANDOM_FACTOR: Decimal = Decimal::from_hundredths(150);
}

impl ConfigParameters {
    /// Every parameter at its default value, with the acceptable ranges of
    /// Figure 20 (heartbeat 15-240 s are the RECOMMENDED bounds of section
    /// 4.5.2). Figure 20's probing-rate current value (15) is not the YANG
    /// default (5); we use the YANG default.
    pub fn server_default() -> Self {
        let d = Decimal::from_hundredths;
        ConfigParameters {
            heartbeat_interval: Some(IntParam::range(15, 240, defaults::HEARTBEAT_INTERVAL)),
            missing_hb_allowed: Some(IntParam::range(3, 20, defaults::MISSING_HB_ALLOWED)),
            probing_rate: Some(IntParam::range(5, 20, defaults::PROBING_RATE)),
            max_retransmit: Some(IntParam::range(2, 15, defaults::MAX_RETRANSMIT)),
            ack_timeout: Some(DecimalParam::range(d(100), d(3000), defaults::ACK_TIMEOUT)),
            ack_random_factor: Some(DecimalParam::range(d(110), d(400), defaults::ACK_RANDOM_FACTOR)),
        }
    }

    /// True if no parameter is present at all.
    pub fn is_empty(&self) -> bool {
        self == &ConfigParameters::default()
    }

    pub(crate) fn int_params(&self) -> [(&'static str, Option<&IntParam>); 4] {
        [
            ("heartbeat-interval", self.heartbeat_interval.as_ref()),
            ("missing-hb-allowed", self.missing_hb_allowed.as_ref()),
            ("probing-rate", self.probing_rate.as_ref()),
            ("max-retransmit", self.max_retransmit.as_ref()),
        ]
    }

    pub(crate) fn decimal_params(&self) -> [(&'static str, Option<&DecimalParam>); 2] {
        [("ack-timeout", self.ack_timeout.as_ref()), ("ack-random-factor", self.ack_random_factor.as_ref())]
    }
}

impl SignalConfig {
    /// What a server answers to GET /config before any PUT (Figure 20).
    pub fn server_default() -> Self {
        SignalConfig {
            sid: None,
            mitigating_config: Some(ConfigParameters::server_default()),
            idle_config: Some(ConfigParameters::server_default()),
        }
    }

    pub(crate) fn from_node(n: Node, w: &mut Vec<Warning>) -> Result<Self, SignalError> {
        let mut f = Fields::new(id::SIGNAL_CONFIG, n)?;
        let c = SignalConfig {
            sid: f.uint(id::SID)?.map(|s| s as u32),
            mitigating_config: params(&mut f, id::MITIGATING_CONFIG, w)?,
            idle_config: params(&mut f, id::IDLE_CONFIG, w)?,
        };
        f.finish()?;
        Ok(c)
    }

    pub(crate) fn to_node(&self) -> Node {
        MapBuilder::new()
            .opt(id::SID, self.sid.map(|s| Node::Uint(s.into())))
            .opt(id::MITIGATING_CONFIG, self.mitigating_config.as_ref().map(ConfigParameters::to_node))
            .opt(id::IDLE_CONFIG, self.idle_config.as_ref().map(ConfigParameters::to_node))
            .build()
    }
}

fn params(f: &mut Fields, key: u16, w: &mut Vec<Warning>) -> Result<Option<ConfigParameters>, SignalError> {
    f.take(key).map(|n| ConfigParameters::from_node(key, n, w)).transpose()
}

impl ConfigParameters {
    fn from_node(key: u16, n: Node, w: &mut Vec<Warning>) -> Result<Self, SignalError> {
        let set = keys::name(key);
        let mut f = Fields::new(key, n)?;
        let mut int = |k| f.take(k).map(|n| IntParam::from_node(k, n, set, w)).transpose();
        let p = ConfigParameters {
            heartbeat_interval: int(id::HEARTBEAT_INTERVAL)?,
            missing_hb_allowed: int(id::MISSING_HB_ALLOWED)?,
            probing_rate: int(id::PROBING_RATE)?,
            max_retransmit: int(id::MAX_RETRANSMIT)?,
            ack_timeout: None,
            ack_random_factor: None,
        };
        let mut dec = |k| f.take(k).map(|n| DecimalParam::from_node(k, n, set, w)).transpose();
        let p = ConfigParameters { ack_timeout: dec(id::ACK_TIMEOUT)?, ack_random_factor: dec(id::ACK_RANDOM_FACTOR)?, ..p };
        f.finish()?;
        Ok(p)
    }

    fn to_node(&self) -> Node {
        let int = |p: &Option<IntParam>| p.map(IntParam::to_node);
        let dec = |p: &Option<DecimalParam>| p.map(DecimalParam::to_node);
        MapBuilder::new()
            .opt(id::HEARTBEAT_INTERVAL, int(&self.heartbeat_interval))
            .opt(id::MISSING_HB_ALLOWED, int(&self.missing_hb_allowed))
            .opt(id::PROBING_RATE, int(&self.probing_rate))
            .opt(id::MAX_RETRANSMIT, int(&self.max_retransmit))
            .opt(id::ACK_TIMEOUT, dec(&self.ack_timeout))
            .opt(id::ACK_RANDOM_FACTOR, dec(&self.ack_random_factor))
            .build()
    }
}

/// DESIGN.md: some registries list keys 34/35 the other way round, so a
/// peer's min > max is repaired by swapping, and reported.
fn swap_if_reversed<T: PartialOrd>(min: &mut Option<T>, max: &mut Option<T>, field: String, w: &mut Vec<Warning>) {
    if let (Some(lo), Some(hi)) = (min.as_ref(), max.as_ref()) {
        if lo > hi {
            std::mem::swap(min, max);
            w.push(Warning::SwappedMinMax { field });
        }
    }
}

impl IntParam {
    fn from_node(key: u16, n: Node, set: &str, w: &mut Vec<Warning>) -> Result<Self, SignalError> {
        let mut f = Fields::new(key, n)?;
        // uint16 bound is enforced by the key table.
        let mut p = IntParam {
            max_value: f.uint(id::MAX_VALUE)?.map(|v| v as u16),
            min_value: f.uint(id::MIN_VALUE)?.map(|v| v as u16),
            current_value: f.uint(id::CURRENT_VALUE)?.map(|v| v as u16),
        };
        f.finish()?;
        let field = format!("{set}/{}", keys::name(key));
        swap_if_reversed(&mut p.min_value, &mut p.max_value, field, w);
        Ok(p)
    }

    fn to_node(self) -> Node {
        let u = |v: Option<u16>| v.map(|v| Node::Uint(v.into()));
        MapBuilder::new()
            .opt(id::MAX_VALUE, u(self.max_value))
            .opt(id::MIN_VALUE, u(self.min_value))
            .opt(id::CURRENT_VALUE, u(self.current_value))
            .build()
    }
}

impl DecimalParam {
    fn from_node(key: u16, n: Node, set: &str, w: &mut Vec<Warning>) -> Result<Self, SignalError> {
        let mut f = Fields::new(key, n)?;
        let mut p = DecimalParam {
            max_value_decimal: f.decimal(id::MAX_VALUE_DECIMAL)?,
            min_value_decimal: f.decimal(id::MIN_VALUE_DECIMAL)?,
            current_value_decimal: f.decimal(id::CURRENT_VALUE_DECIMAL)?,
        };
        f.finish()?;
        let field = format!("{set}/{}", keys::name(key));
        swap_if_reversed(&mut p.min_value_decimal, &mut p.max_value_decimal, field, w);
        Ok(p)
    }

    fn to_node(self) -> Node {
        let d = |v: Option<Decimal>| v.map(Node::Decimal);
        MapBuilder::new()
            .opt(id::MAX_VALUE_DECIMAL, d(self.max_value_decimal))
            .opt(id::MIN_VALUE_DECIMAL, d(self.min_value_decimal))
            .opt(id::CURRENT_VALUE_DECIMAL, d(self.current_value_decimal))
            .build()
    }
}
