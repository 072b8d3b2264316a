//! Session configuration negotiation (4.5): from the server's GET /config answer
//! (acceptable ranges and current values) and our preferences, the PUT body and the
//! values the session then runs with.

use std::time::Duration;

use dots_proto::coap::TransmissionParams;
use dots_proto::signal::{ConfigParameters, Decimal, DecimalParam, IntParam, SignalConfig};

use super::config::Preferences;
use super::session::SessionParams;

/// The PUT /config body: each parameter at our preference clamped into the server's
/// [min, max], or at the server's current value; the same for both sets (we do not
/// ask for a quieter idle configuration).
pub fn choose(server: &SignalConfig, prefs: &Preferences) -> SignalConfig {
    let mitigating = server.mitigating_config.as_ref().map(|p| choose_set(p, prefs));
    let idle = server.idle_config.as_ref().map(|p| choose_set(p, prefs));
    SignalConfig { sid: None, mitigating_config: mitigating, idle_config: idle }
}

fn choose_set(p: &ConfigParameters, prefs: &Preferences) -> ConfigParameters {
    ConfigParameters {
        heartbeat_interval: int(p.heartbeat_interval, prefs.heartbeat_interval),
        missing_hb_allowed: int(p.missing_hb_allowed, prefs.missing_hb_allowed),
        probing_rate: int(p.probing_rate, prefs.probing_rate),
        max_retransmit: int(p.max_retransmit, prefs.max_retransmit),
        ack_timeout: dec(p.ack_timeout, prefs.ack_timeout),
        ack_random_factor: dec(p.ack_random_factor, prefs.ack_random_factor),
    }
}

fn int(server: Option<IntParam>, want: Option<u16>) -> Option<IntParam> {
    let s = server?;
    let v = want.or(s.current_value)?;
    let v = v.max(s.min_value.unwrap_or(0)).min(s.max_value.unwrap_or(u16::MAX));
    Some(IntParam::current(v))
}

fn dec(server: Option<DecimalParam>, want: Option<Decimal>) -> Option<DecimalParam> {
    let s = server?;
    let v = want.or(s.current_value_decimal)?;
    let lo = s.min_value_decimal.unwrap_or(v);
    let hi = s.max_value_decimal.unwrap_or(v);
    Some(DecimalParam::current(v.max(lo).min(hi)))
}

/// The values of one configuration set over `base` ("default values for non-negotiated
/// message transmission parameters", 4.5.2).
pub fn session_params(p: Option<&ConfigParameters>, base: SessionParams) -> SessionParams {
    let Some(p) = p else { return base };
    let cur = |v: Option<IntParam>| v.and_then(|v| v.current_value);
    let cur_dec = |v: Option<DecimalParam>| v.and_then(|v| v.current_value_decimal);
    let t = base.transmission;
    let secs = |d: Decimal| Duration::from_millis(d.hundredths().max(1) as u64 * 10);
    SessionParams {
        transmission: TransmissionParams {
            ack_timeout: cur_dec(p.ack_timeout).map_or(t.ack_timeout, secs),
            ack_random_factor: cur_dec(p.ack_random_factor)
                .map_or(t.ack_random_factor, |d| d.hundredths() as f64 / 100.0),
            max_retransmit: cur(p.max_retransmit).map_or(t.max_retransmit, u32::from),
            max_latency: t.max_latency,
        },
        heartbeat_interval: cur(p.heartbeat_interval)
            .map_or(base.heartbeat_interval, |s| Duration::from_secs(s.into())),
        missing_hb_allowed: cur(p.missing_hb_allowed).map_or(base.missing_hb_allowed, u32::from),
        non_min_interval: base.non_min_interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_are_clamped_into_the_servers_ranges_and_gaps_take_its_current_values() {
        let server = SignalConfig::server_default(); // heartbeat 15..240 (30), max-retransmit 2..15 (3)
        let prefs = Preferences {
            heartbeat_interval: Some(5),
            max_retransmit: Some(9),
            ack_timeout: Some(Decimal::from_hundredths(10_000)),
            ..Preferences::default()
        };
        let c = choose(&server, &prefs);
        let m = c.mitigating_config.unwrap();
        assert_eq!(m.heartbeat_interval, Some(IntParam::current(15)));
        assert_eq!(m.max_retransmit, Some(IntParam::current(9)));
        assert_eq!(m.missing_hb_allowed, Some(IntParam::current(15)));
        assert_eq!(m.ack_timeout, Some(DecimalParam::current(Decimal::from_hundredths(3000))));
        assert_eq!(c.idle_config.unwrap(), m);
        let p = session_params(Some(&m), SessionParams::default());
        assert_eq!(p.heartbeat_interval, Duration::from_secs(15));
        assert_eq!(p.transmission.max_retransmit, 9);
        assert_eq!(p.transmission.ack_timeout, Duration::from_secs(30));
        assert_eq!(p.transmission.ack_random_factor, 1.5);
    }
}
