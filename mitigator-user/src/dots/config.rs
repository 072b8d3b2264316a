//! Per-client signal channel session configuration (section 4.5): what
//! PUT/GET/DELETE /config do, and the heartbeat and transmission values
//! the session layer must use in the mitigating or idle state.

use std::collections::BTreeMap;

use dots_proto::signal::{
    defaults, validate_config_put, ConfigParameters, ConfigPolicy, Decimal, ResponseCode, SignalConfig,
};
use serde::{Deserialize, Serialize};

use super::event::DotsEvent;
use super::refusal::Refusal;
use super::repr;

/// The configuration installed by a client's last accepted PUT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionConfig {
    pub sid: u32,
    /// The acceptable ranges with the negotiated current values.
    #[serde(with = "repr::signal_config")]
    pub config: SignalConfig,
    pub installed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPutOutcome {
    /// 2.01 for a 'sid' not in the configuration data, 2.04 for the
    /// current one (section 4.5.2).
    pub code: ResponseCode,
    pub config: SignalConfig,
    pub events: Vec<DotsEvent>,
}

/// The values in force for one state (mitigating or idle). A
/// 'heartbeat-interval' of 0 disables heartbeats (4.5.1). Over TCP/TLS
/// only the heartbeat interval applies (4.5: the others "are negotiated
/// only for DOTS over unreliable transports"); that is the session
/// layer's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    pub heartbeat_interval: u16,
    pub missing_hb_allowed: u16,
    pub probing_rate: u16,
    pub max_retransmit: u16,
    pub ack_timeout: Decimal,
    pub ack_random_factor: Decimal,
}

impl Default for SessionParams {
    /// The RECOMMENDED values of section 4.5.2.
    fn default() -> Self {
        SessionParams {
            heartbeat_interval: defaults::HEARTBEAT_INTERVAL,
            missing_hb_allowed: defaults::MISSING_HB_ALLOWED,
            probing_rate: defaults::PROBING_RATE,
            max_retransmit: defaults::MAX_RETRANSMIT,
            ack_timeout: defaults::ACK_TIMEOUT,
            ack_random_factor: defaults::ACK_RANDOM_FACTOR,
        }
    }
}

impl SessionParams {
    /// The current values of one configuration set, defaults where absent
    /// ("default values for non-negotiated message transmission
    /// parameters", 4.5.2).
    pub fn from_parameters(p: Option<&ConfigParameters>) -> Self {
        let d = SessionParams::default();
        let Some(p) = p else { return d };
        let int = |v: &Option<dots_proto::signal::IntParam>, dflt| v.and_then(|v| v.current_value).unwrap_or(dflt);
        let dec = |v: &Option<dots_proto::signal::DecimalParam>, dflt| {
            v.and_then(|v| v.current_value_decimal).unwrap_or(dflt)
        };
        SessionParams {
            heartbeat_interval: int(&p.heartbeat_interval, d.heartbeat_interval),
            missing_hb_allowed: int(&p.missing_hb_allowed, d.missing_hb_allowed),
            probing_rate: int(&p.probing_rate, d.probing_rate),
            max_retransmit: int(&p.max_retransmit, d.max_retransmit),
            ack_timeout: dec(&p.ack_timeout, d.ack_timeout),
            ack_random_factor: dec(&p.ack_random_factor, d.ack_random_factor),
        }
    }

    /// How long without any traffic from the peer before the session is
    /// lost: 'missing-hb-allowed' heartbeats of 'heartbeat-interval'
    /// seconds (4.7: "during the time span required to exhaust the maximum
    /// 'missing-hb-allowed' threshold"). None when heartbeats are off.
    pub fn loss_timeout_ms(&self) -> Option<u64> {
        (self.heartbeat_interval != 0)
            .then(|| u64::from(self.heartbeat_interval) * u64::from(self.missing_hb_allowed.max(1)) * 1000)
    }
}

/// Session configurations keyed by client 'cuid'. A client without an
/// entry uses the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigTable {
    sessions: BTreeMap<String, SessionConfig>,
}

impl ConfigTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn session(&self, cuid: &str) -> Option<&SessionConfig> {
        self.sessions.get(cuid)
    }

    /// PUT /config/sid=.. (section 4.5.2). Out-of-range values are 4.22
    /// and a missing 'sid' 4.00 (both from `validate_config_put`). "'sid'
    /// values MUST increase monotonically" and a higher 'sid' overrides a
    /// lower one, which is deleted; the text does not say what a lower
    /// 'sid' than the installed one gets. We refuse it with 4.00 (it
    /// "violates the DOTS protocol", section 9), so that a stale PUT that
    /// arrives late never undoes a newer one. DELETE (or a reboot's
    /// DELETE, 4.5.4) clears the 'sid' and lets a client start again.
    pub fn put(
        &mut self,
        cuid: &str,
        sid: Option<u32>,
        body: &SignalConfig,
        policy: &ConfigPolicy,
        now: u64,
    ) -> Result<ConfigPutOutcome, Refusal> {
        let config = validate_config_put(sid, body, policy)?;
        let sid = sid.expect("validate_config_put requires a sid");
        let current = self.sessions.get(cuid).map(|s| s.sid);
        let code = match current {
            Some(c) if sid < c => {
                return Err(Refusal::bad_request(format!(
                    "sid {sid} is lower than the installed sid {c}: 'sid' values MUST increase monotonically (section 4.5.2)"
                )))
            }
            Some(c) if sid == c => ResponseCode::CHANGED,
            _ => ResponseCode::CREATED,
        };
        let entry = SessionConfig { sid, config: config.clone(), installed_ms: now };
        self.sessions.insert(cuid.to_string(), entry);
        Ok(ConfigPutOutcome { code, config, events: vec![DotsEvent::ConfigChanged { cuid: cuid.to_string() }] })
    }

    /// GET /config[/sid=..] (sections 4.5.1, 4.5.2): the acceptable ranges
    /// with the client's current values, or the server's defaults. A
    /// 'sid' that is not the installed one is 4.04 (section 9).
    pub fn get(&self, cuid: &str, sid: Option<u32>, policy: &ConfigPolicy) -> Result<SignalConfig, Refusal> {
        let installed = self.sessions.get(cuid);
        match (sid, installed) {
            (Some(s), i) if i.is_none_or(|i| i.sid != s) => {
                Err(Refusal::not_found(format!("no session configuration with sid {s}")))
            }
            (_, Some(i)) => Ok(i.config.clone()),
            (_, None) => Ok(policy.acceptable.clone()),
        }
    }

    /// DELETE /config[/sid=..] (section 4.5.4): "resets the DOTS signal
    /// channel session configuration back to the default values" and
    /// answers 2.02, with or without a 'sid'.
    pub fn delete(&mut self, cuid: &str) -> Vec<DotsEvent> {
        match self.sessions.remove(cuid) {
            Some(_) => vec![DotsEvent::ConfigChanged { cuid: cuid.to_string() }],
            None => Vec::new(),
        }
    }

    /// The values the session layer uses for this client now: from
    /// 'mitigating-config' while it has an active mitigation, else from
    /// 'idle-config' (section 4.5: "DOTS agents MUST follow the appropriate
    /// configuration set as a function of the mitigation activity").
    pub fn session_params(&self, cuid: &str, mitigating: bool, policy: &ConfigPolicy) -> SessionParams {
        let config = self.sessions.get(cuid).map_or(&policy.acceptable, |s| &s.config);
        let set = if mitigating { &config.mitigating_config } else { &config.idle_config };
        SessionParams::from_parameters(set.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dots_proto::signal::IntParam;

    fn policy() -> ConfigPolicy {
        ConfigPolicy::default()
    }

    /// Figure 23: heartbeats off when idle, 30 s when mitigating.
    fn figure_23() -> SignalConfig {
        SignalConfig {
            sid: None,
            mitigating_config: Some(ConfigParameters {
                heartbeat_interval: Some(IntParam::current(30)),
                missing_hb_allowed: Some(IntParam::current(15)),
                ..ConfigParameters::default()
            }),
            idle_config: Some(ConfigParameters {
                heartbeat_interval: Some(IntParam::current(0)),
                ..ConfigParameters::default()
            }),
        }
    }

    fn hb(interval: u16) -> SignalConfig {
        SignalConfig {
            sid: None,
            mitigating_config: Some(ConfigParameters {
                heartbeat_interval: Some(IntParam::current(interval)),
                ..ConfigParameters::default()
            }),
            idle_config: None,
        }
    }

    #[test]
    fn config_put_within_ranges_is_created_then_changed() {
        let mut t = ConfigTable::new();
        let out = t.put("c1", Some(123), &figure_23(), &policy(), 1_000).unwrap();
        assert_eq!(out.code, ResponseCode::CREATED);
        assert_eq!(out.events, vec![DotsEvent::ConfigChanged { cuid: "c1".into() }]);
        // The response keeps the acceptable ranges (Figure 20).
        let interval = out.config.mitigating_config.unwrap().heartbeat_interval.unwrap();
        assert_eq!(interval, IntParam::range(15, 240, 30));
        let again = t.put("c1", Some(123), &figure_23(), &policy(), 2_000).unwrap();
        assert_eq!(again.code, ResponseCode::CHANGED);
        assert_eq!(t.put("c1", Some(124), &hb(60), &policy(), 3_000).unwrap().code, ResponseCode::CREATED);
        assert_eq!(t.session("c1").unwrap().sid, 124);
    }

    #[test]
    fn config_put_outside_ranges_is_4_22_and_changes_nothing() {
        let mut t = ConfigTable::new();
        t.put("c1", Some(1), &hb(60), &policy(), 0).unwrap();
        let err = t.put("c1", Some(2), &hb(241), &policy(), 0).unwrap_err();
        assert_eq!(err.code, ResponseCode::UNPROCESSABLE_ENTITY);
        assert!(err.diagnostic.contains("heartbeat-interval"), "{}", err.diagnostic);
        assert_eq!(t.session("c1").unwrap().sid, 1);
        assert_eq!(t.session_params("c1", true, &policy()).heartbeat_interval, 60);
    }

    #[test]
    fn config_put_without_sid_is_4_00() {
        let err = ConfigTable::new().put("c1", None, &hb(60), &policy(), 0).unwrap_err();
        assert_eq!(err.code, ResponseCode::BAD_REQUEST);
    }

    #[test]
    fn config_put_with_lower_sid_is_refused() {
        let mut t = ConfigTable::new();
        t.put("c1", Some(10), &hb(60), &policy(), 0).unwrap();
        let err = t.put("c1", Some(9), &hb(90), &policy(), 0).unwrap_err();
        assert_eq!(err.code, ResponseCode::BAD_REQUEST);
        assert_eq!(t.session_params("c1", true, &policy()).heartbeat_interval, 60);
    }

    #[test]
    fn config_delete_resets_to_defaults_and_frees_the_sid() {
        let mut t = ConfigTable::new();
        t.put("c1", Some(10), &hb(60), &policy(), 0).unwrap();
        assert_eq!(t.delete("c1"), vec![DotsEvent::ConfigChanged { cuid: "c1".into() }]);
        assert_eq!(t.get("c1", None, &policy()).unwrap(), SignalConfig::server_default());
        assert_eq!(t.session_params("c1", true, &policy()), SessionParams::default());
        // After a DELETE (e.g. a reboot, 4.5.4) a low sid is new again.
        assert_eq!(t.put("c1", Some(1), &hb(60), &policy(), 0).unwrap().code, ResponseCode::CREATED);
        assert!(ConfigTable::new().delete("c1").is_empty());
    }

    #[test]
    fn config_get_with_unknown_sid_is_4_04() {
        let mut t = ConfigTable::new();
        assert_eq!(t.get("c1", Some(5), &policy()).unwrap_err().code, ResponseCode::NOT_FOUND);
        t.put("c1", Some(5), &hb(60), &policy(), 0).unwrap();
        assert!(t.get("c1", Some(5), &policy()).is_ok());
        assert_eq!(t.get("c1", Some(4), &policy()).unwrap_err().code, ResponseCode::NOT_FOUND);
        assert_eq!(t.get("other", None, &policy()).unwrap(), SignalConfig::server_default());
    }

    #[test]
    fn mitigating_and_idle_values_differ_as_negotiated() {
        let mut t = ConfigTable::new();
        t.put("c1", Some(123), &figure_23(), &policy(), 0).unwrap();
        let mitigating = t.session_params("c1", true, &policy());
        let idle = t.session_params("c1", false, &policy());
        assert_eq!((mitigating.heartbeat_interval, mitigating.missing_hb_allowed), (30, 15));
        assert_eq!(mitigating.loss_timeout_ms(), Some(450_000));
        assert_eq!(idle.heartbeat_interval, 0);
        assert_eq!(idle.loss_timeout_ms(), None);
        // Not negotiated: the defaults.
        assert_eq!(idle.ack_timeout, defaults::ACK_TIMEOUT);
    }

    #[test]
    fn config_table_serde_round_trip() {
        let mut t = ConfigTable::new();
        t.put("c1", Some(123), &figure_23(), &policy(), 7).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        let back: ConfigTable = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.session_params("c1", false, &policy()).heartbeat_interval, 0);
    }
}
