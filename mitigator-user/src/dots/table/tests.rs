//! One test per behaviour of sections 4.4 and 4.7 of the text.

use super::*;
use crate::dots::{DotsPolicy, DotsState};
use dots_proto::signal::{
    validate_mitigation_put, AttackStatus, ConflictCause, IntParam, MitigatePath, MitigationPolicy, MitigationScope,
    PortRange, Scope, SignalConfig,
};

const T0: u64 = 1_700_000_000_000;
const S: u64 = 1000;

fn client(cuid: &str) -> ClientCtx {
    ClientCtx {
        cuid: cuid.into(),
        domain: format!("{cuid}.example"),
        allowed: vec!["2001:db8::/32".parse().unwrap(), "192.0.2.0/24".parse().unwrap()],
    }
}

fn scope(prefixes: &[&str]) -> Scope {
    Scope {
        target: Target { target_prefix: prefixes.iter().map(|p| p.parse().unwrap()).collect(), ..Target::default() },
        lifetime: Some(Lifetime::Seconds(3600)),
        ..Scope::default()
    }
}

/// Through the real validator, as the session layer will do it.
fn validated(cuid: &str, mid: u32, scope: Scope) -> MitigationRequest {
    let path = MitigatePath { cdid: None, cuid: cuid.into(), mid: Some(mid) };
    let policy = MitigationPolicy { allow_indefinite: true, max_lifetime: 86_400 };
    validate_mitigation_put(&path, &MitigationScope { scopes: vec![scope] }, &policy).unwrap()
}

fn put(t: &mut MitigationTable, cuid: &str, mid: u32, s: Scope, now: u64) -> Result<PutOutcome, Refusal> {
    t.put(&client(cuid), validated(cuid, mid, s), Vec::new(), false, now)
}

fn preconfigured(prefixes: &[&str]) -> Scope {
    Scope { trigger_mitigation: Some(false), ..scope(prefixes) }
}

fn status(t: &MitigationTable, cuid: &str, mid: u32) -> Option<Status> {
    t.mitigation(cuid, mid).map(|m| m.status)
}

fn mids(t: &MitigationTable, cuid: &str) -> Vec<u32> {
    t.get(cuid, None).map(|v| v.iter().map(|m| m.mid).collect()).unwrap_or_default()
}

fn enforced_mids(t: &MitigationTable) -> Vec<(String, u32)> {
    t.enforced().map(|e| (e.cuid, e.mid)).collect()
}

fn status_event(cuid: &str, mid: u32, status: Status) -> DotsEvent {
    DotsEvent::StatusChanged { cuid: cuid.into(), mid, status }
}

// ------------------------------------------------------------ 4.4.1

#[test]
fn new_request_is_created_2_01_at_status_1_then_2_once_enforced() {
    let mut t = MitigationTable::default();
    let out = put(&mut t, "a", 123, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    assert_eq!(out.response.code(), Some(ResponseCode::CREATED));
    let PutResponse::Created { mitigation, conflict } = &out.response else { panic!("{out:?}") };
    assert_eq!(conflict, &None);
    assert_eq!(mitigation.status, Status::AttackMitigationInProgress);
    assert_eq!(mitigation.mitigation_start, Some(T0 / 1000));
    assert_eq!(mitigation.expires_ms, Some(T0 + 3600 * S));
    assert!(out.events.contains(&status_event("a", 123, Status::AttackMitigationInProgress)));
    assert_eq!(enforcement_keys(&out.events), keys(&[("a", 123)]));
    assert!(out.events.contains(&DotsEvent::ActivityChanged { cuid: "a".into(), mitigating: true }));
    assert_eq!(enforced_mids(&t), vec![("a".to_string(), 123)]);

    let ev = t.confirm_enforced("a", 123);
    assert!(ev.contains(&status_event("a", 123, Status::AttackSuccessfullyMitigated)));
    assert_eq!(status(&t, "a", 123), Some(Status::AttackSuccessfullyMitigated));
    // Confirming again is a no-op.
    assert!(t.confirm_enforced("a", 123).is_empty());
}

#[test]
fn refresh_with_same_parameters_is_2_04_with_the_new_lifetime() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    let s = Scope { lifetime: Some(Lifetime::Seconds(600)), ..scope(&["2001:db8:6401::1/128"]) };
    let out = put(&mut t, "a", 1, s, T0 + 3000 * S).unwrap();
    assert_eq!(out.response.code(), Some(ResponseCode::CHANGED));
    let m = t.mitigation("a", 1).unwrap();
    assert_eq!(m.granted_lifetime, Lifetime::Seconds(600));
    assert_eq!(m.expires_ms, Some(T0 + 3600 * S));
    assert_eq!(m.remaining_lifetime(T0 + 3000 * S), Lifetime::Seconds(600));
    assert!(out.events.contains(&DotsEvent::Changed { cuid: "a".into(), mid: 1 }));
    // Nothing else changed: no new status, same rules.
    assert!(!out.events.iter().any(|e| matches!(e, DotsEvent::StatusChanged { .. } | DotsEvent::EnforcementChanged { .. })));
}

#[test]
fn same_mid_with_changed_parameters_is_4_00() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    let before = t.mitigation("a", 1).cloned();
    let err = put(&mut t, "a", 1, scope(&["2001:db8:6401::2/128"]), T0 + S).unwrap_err();
    assert_eq!(err.code, ResponseCode::BAD_REQUEST);
    assert!(err.diagnostic.contains("4.4.1.3"), "{}", err.diagnostic);
    let err = put(&mut t, "a", 1, preconfigured(&["2001:db8:6401::1/128"]), T0 + S).unwrap_err();
    assert_eq!(err.code, ResponseCode::BAD_REQUEST);
    assert_eq!(t.mitigation("a", 1).cloned(), before);
}

#[test]
fn refresh_may_list_the_target_in_another_order() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128", "2001:db8:6401::2/128"]), T0).unwrap();
    let out = put(&mut t, "a", 1, scope(&["2001:db8:6401::2/128", "2001:db8:6401::1/128"]), T0).unwrap();
    assert_eq!(out.response.code(), Some(ResponseCode::CHANGED));
}

#[test]
fn higher_mid_replaces_overlapping_lower_mids() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::/64"]), T0).unwrap();
    put(&mut t, "a", 2, scope(&["192.0.2.0/28"]), T0).unwrap();
    let out = put(&mut t, "a", 3, scope(&["2001:db8:6401::1/128"]), T0 + S).unwrap();
    assert_eq!(out.response.code(), Some(ResponseCode::CREATED));
    assert!(out.events.contains(&DotsEvent::Removed {
        cuid: "a".into(),
        mid: 1,
        reason: RemovalReason::Replaced { by_mid: 3 }
    }));
    assert_eq!(enforcement_keys(&out.events), keys(&[("a", 1), ("a", 3)]), "the replaced mid goes, the new one comes");
    // "the overlapped lower numeric 'mid' MUST be automatically deleted and
    // no longer available"; the non-overlapping mid 2 stays.
    assert_eq!(mids(&t, "a"), vec![2, 3]);
    assert_eq!(t.get("a", Some(1)).unwrap_err().code, ResponseCode::NOT_FOUND);
}

#[test]
fn lower_mid_overlapping_a_higher_one_is_4_09_naming_the_mid() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 10, scope(&["2001:db8:6401::/64"]), T0).unwrap();
    let err = put(&mut t, "a", 9, scope(&["2001:db8:6401::1/128", "192.0.2.1/32"]), T0).unwrap_err();
    assert_eq!(err.code, ResponseCode::CONFLICT);
    let info = err.conflict.clone().unwrap();
    assert_eq!(info.conflict_cause, Some(ConflictCause::OverlappingTargets));
    // Same client: conflict-status is for conflicts between clients.
    assert_eq!(info.conflict_status, None);
    let cs = info.conflict_scope.unwrap();
    assert_eq!(cs.mid, Some(10));
    assert_eq!(cs.target.target_prefix, vec!["2001:db8:6401::1/128".parse().unwrap()]);
    assert!(err.conflict_body().is_some());
    assert_eq!(mids(&t, "a"), vec![10]);
}

#[test]
fn other_clients_overlap_accepted_2_01_with_conflict_information() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::/64"]), T0).unwrap();
    let out = put(&mut t, "b", 1, scope(&["2001:db8:6401::1/128"]), T0 + S).unwrap();
    let PutResponse::Created { conflict: Some(info), .. } = &out.response else { panic!("{out:?}") };
    assert_eq!(info.conflict_status, Some(ConflictStatus::RequestActive));
    assert_eq!(info.conflict_cause, Some(ConflictCause::OverlappingTargets));
    let cs = info.conflict_scope.as_ref().unwrap();
    assert_eq!(cs.target.target_prefix, vec!["2001:db8:6401::1/128".parse().unwrap()]);
    // The other client hears about it too (4.4.2.1).
    assert!(out.events.iter().any(|e| matches!(e, DotsEvent::Conflict { cuid, mid: 1, .. } if cuid == "a")));
    assert_eq!(enforced_mids(&t).len(), 2);
}

#[test]
fn other_clients_overlap_rejected_4_09_under_the_reject_policy() {
    let policy = TablePolicy { other_client_overlap: OtherClientOverlap::Reject, ..TablePolicy::default() };
    let mut t = MitigationTable::new(policy);
    put(&mut t, "a", 1, scope(&["2001:db8:6401::/64"]), T0).unwrap();
    let err = put(&mut t, "b", 1, scope(&["2001:db8:6401::1/128"]), T0 + 600 * S).unwrap_err();
    assert_eq!(err.code, ResponseCode::CONFLICT);
    let info = err.conflict.unwrap();
    assert_eq!(info.conflict_status, Some(ConflictStatus::RequestInactiveOtherActive));
    assert_eq!(info.conflict_cause, Some(ConflictCause::OverlappingTargets));
    // "SHOULD be equal to the lifetime of the active mitigation request".
    assert_eq!(info.retry_timer, Some(3000));
    assert!(t.get("b", None).is_err());
    // No overlap, no conflict.
    assert!(put(&mut t, "b", 2, scope(&["192.0.2.1/32"]), T0).is_ok());
}

#[test]
fn prefix_outside_the_client_domain_is_refused_and_nothing_changes() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    let snapshot = serde_json::to_string(&t).unwrap();
    let err = put(&mut t, "a", 2, scope(&["2001:db8:6401::2/128", "198.51.100.0/24"]), T0).unwrap_err();
    // The text names no code; 4.00 as for foreign aliases (see authorize()).
    assert_eq!(err.code, ResponseCode::BAD_REQUEST);
    assert!(err.diagnostic.contains("198.51.100.0/24"), "{}", err.diagnostic);
    // A resolved address (from an FQDN) is checked the same way.
    let s = Scope { target: Target { target_fqdn: vec!["www.example.net".into()], ..Target::default() }, ..scope(&[]) };
    let err =
        t.put(&client("a"), validated("a", 3, s), vec!["203.0.113.7/32".parse().unwrap()], false, T0).unwrap_err();
    assert!(err.diagnostic.contains("203.0.113.7/32"), "{}", err.diagnostic);
    assert_eq!(serde_json::to_string(&t).unwrap(), snapshot);
}

#[test]
fn cuid_in_use_by_another_client_is_4_09_cuid_collision() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    let intruder = ClientCtx { domain: "elsewhere.example".into(), ..client("a") };
    let err = t.put(&intruder, validated("a", 2, scope(&["192.0.2.1/32"])), vec![], false, T0).unwrap_err();
    assert_eq!(err.code, ResponseCode::CONFLICT);
    // Figure 11: only the cause.
    let info = err.conflict.unwrap();
    assert_eq!(info.conflict_cause, Some(ConflictCause::CuidCollision));
    assert_eq!((info.conflict_status, info.conflict_scope, info.retry_timer), (None, None, None));
}

// ------------------------------------------------------------ 4.4.3

#[test]
fn efficacy_update_is_2_04_and_keeps_the_lifetime() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 123, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    // Figure 16: no lifetime, 'attack-status', If-Match.
    let s =
        Scope { lifetime: None, attack_status: Some(AttackStatus::UnderAttack), ..scope(&["2001:db8:6401::1/128"]) };
    let out = t.put(&client("a"), validated("a", 123, s), vec![], true, T0 + 60 * S).unwrap();
    assert_eq!(out.response.code(), Some(ResponseCode::CHANGED));
    let m = t.mitigation("a", 123).unwrap();
    assert_eq!(m.attack_status, Some(AttackStatus::UnderAttack));
    assert_eq!(m.expires_ms, Some(T0 + 3600 * S));
    // An efficacy update with other parameters is 4.00 (4.4.3).
    let s =
        Scope { lifetime: None, attack_status: Some(AttackStatus::UnderAttack), ..scope(&["2001:db8:6401::2/128"]) };
    let err = t.put(&client("a"), validated("a", 123, s), vec![], true, T0).unwrap_err();
    assert_eq!(err.code, ResponseCode::BAD_REQUEST);
    assert!(err.diagnostic.contains("4.4.3"));
}

#[test]
fn efficacy_update_for_an_unknown_mid_with_if_match_is_silently_ignored() {
    let mut t = MitigationTable::default();
    let s =
        Scope { lifetime: None, attack_status: Some(AttackStatus::UnderAttack), ..scope(&["2001:db8:6401::1/128"]) };
    let out = t.put(&client("a"), validated("a", 5, s.clone()), vec![], true, T0).unwrap();
    assert_eq!((out.response.code(), out.events.len()), (None, 0));
    // Without If-Match it is a new request, which needs a lifetime.
    let err = t.put(&client("a"), validated("a", 5, s), vec![], false, T0).unwrap_err();
    assert_eq!(err.code, ResponseCode::BAD_REQUEST);
    assert!(t.iter().next().is_none());
}

#[test]
fn efficacy_update_does_not_revive_a_withdrawn_mitigation() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    t.delete("a", 1, T0);
    let s =
        Scope { lifetime: None, attack_status: Some(AttackStatus::UnderAttack), ..scope(&["2001:db8:6401::1/128"]) };
    t.put(&client("a"), validated("a", 1, s), vec![], true, T0 + S).unwrap();
    assert_eq!(status(&t, "a", 1), Some(Status::DotsClientWithdrawnMitigation));
}

// ------------------------------------------------------- lifetimes

#[test]
fn lifetime_expiry_reports_6_and_removes() {
    let mut t = MitigationTable::default();
    let s = Scope { lifetime: Some(Lifetime::Seconds(60)), ..scope(&["2001:db8:6401::1/128"]) };
    put(&mut t, "a", 1, s, T0).unwrap();
    assert_eq!(t.next_deadline(), Some(T0 + 60 * S));
    assert!(t.tick(T0 + 59 * S).is_empty());
    assert_eq!(t.mitigation("a", 1).unwrap().remaining_lifetime(T0 + 59_500), Lifetime::Seconds(1));
    let ev = t.tick(T0 + 60 * S);
    assert!(ev.contains(&status_event("a", 1, Status::AttackMitigationTerminated)));
    assert!(ev.contains(&DotsEvent::Removed { cuid: "a".into(), mid: 1, reason: RemovalReason::Expired }));
    assert_eq!(enforcement_keys(&ev), keys(&[("a", 1)]));
    assert!(ev.contains(&DotsEvent::ActivityChanged { cuid: "a".into(), mitigating: false }));
    assert!(t.iter().next().is_none());
    assert_eq!(t.next_deadline(), None);
}

#[test]
fn indefinite_lifetime_never_expires() {
    let mut t = MitigationTable::default();
    let s = Scope { lifetime: Some(Lifetime::Indefinite), ..scope(&["2001:db8:6401::1/128"]) };
    put(&mut t, "a", 1, s, T0).unwrap();
    let m = t.mitigation("a", 1).unwrap();
    assert_eq!((m.expires_ms, m.remaining_lifetime(T0 + 1)), (None, Lifetime::Indefinite));
    assert_eq!(t.next_deadline(), None);
    assert!(t.tick(T0 + 10 * 365 * 86_400 * S).is_empty());
    assert_eq!(status(&t, "a", 1), Some(Status::AttackMitigationInProgress));
}

// ------------------------------------------------------------ 4.4.4

#[test]
fn delete_keeps_mitigating_at_5_for_120_s_then_6_and_removed() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    t.confirm_enforced("a", 1);
    let out = t.delete("a", 1, T0 + 10 * S);
    assert!(out.existed);
    assert_eq!(DeleteOutcome::CODE, ResponseCode::DELETED);
    assert!(out.events.contains(&status_event("a", 1, Status::DotsClientWithdrawnMitigation)));
    assert_eq!(enforcement_keys(&out.events), None, "still enforced while terminating");
    assert_eq!(enforced_mids(&t), vec![("a".to_string(), 1)]);
    assert_eq!(t.next_deadline(), Some(T0 + 130 * S));
    // The remaining lifetime reported is the terminating period's, not the
    // request's (3600 s).
    assert_eq!(t.mitigation("a", 1).unwrap().remaining_lifetime(T0 + 20 * S), Lifetime::Seconds(110));
    assert!(t.tick(T0 + 129 * S).is_empty());
    let ev = t.tick(T0 + 130 * S);
    assert!(ev.contains(&status_event("a", 1, Status::AttackMitigationTerminated)));
    assert!(ev.contains(&DotsEvent::Removed { cuid: "a".into(), mid: 1, reason: RemovalReason::Terminated }));
    assert_eq!(enforcement_keys(&ev), keys(&[("a", 1)]));
    assert!(t.iter().next().is_none());
}

#[test]
fn delete_of_an_unknown_mid_is_still_2_02() {
    let mut t = MitigationTable::default();
    let out = t.delete("a", 42, T0);
    assert_eq!((out.existed, out.events.len()), (false, 0));
}

#[test]
fn delete_touches_only_the_clients_own_mid() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    assert!(!t.delete("b", 1, T0).existed);
    assert_eq!(status(&t, "a", 1), Some(Status::AttackMitigationInProgress));
}

#[test]
fn rerequest_during_terminating_doubles_the_period_to_240_then_caps_at_300() {
    let mut t = MitigationTable::default();
    let p = &["2001:db8:6401::1/128"];
    put(&mut t, "a", 1, scope(p), T0).unwrap();
    let mut now = T0;
    for expected in [120, 240, 300, 300] {
        t.delete("a", 1, now);
        let m = t.mitigation("a", 1).unwrap();
        assert_eq!(m.terminating_until_ms, Some(now + expected * S), "period {expected}");
        now += 60 * S;
        // Asked again before the period ends: active again.
        let out = put(&mut t, "a", 1, scope(p), now).unwrap();
        assert_eq!(out.response.code(), Some(ResponseCode::CHANGED));
        assert!(out.events.contains(&status_event("a", 1, Status::AttackSuccessfullyMitigated)));
        assert_eq!(t.mitigation("a", 1).unwrap().terminating_until_ms, None);
    }
}

#[test]
fn new_mid_during_terminating_inherits_the_doubled_period() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::/64"]), T0).unwrap();
    t.delete("a", 1, T0);
    put(&mut t, "a", 2, scope(&["2001:db8:6401::1/128"]), T0 + S).unwrap();
    assert_eq!(mids(&t, "a"), vec![2]);
    t.delete("a", 2, T0 + 2 * S);
    assert_eq!(t.mitigation("a", 2).unwrap().terminating_until_ms, Some(T0 + 242 * S));
}

// -------------------------------------- trigger-mitigation, 4.7 loss

#[test]
fn preconfigured_request_is_held_at_8_and_not_enforced() {
    let mut t = MitigationTable::default();
    let out = put(&mut t, "a", 1, preconfigured(&["2001:db8:6401::/64"]), T0).unwrap();
    assert_eq!(out.response.code(), Some(ResponseCode::CREATED));
    let m = t.mitigation("a", 1).unwrap();
    assert_eq!((m.status, m.mitigation_start), (Status::AttackMitigationSignalLoss, None));
    assert_eq!(m.to_scope(T0).mitigation_start, None);
    assert!(enforced_mids(&t).is_empty());
    assert_eq!(enforcement_keys(&out.events), None);
    assert!(!t.is_mitigating("a"));
    // An overlapping immediate request does not conflict with it by mid.
    assert!(put(&mut t, "a", 0, scope(&["2001:db8:6401::1/128"]), T0).is_ok());
}

#[test]
fn session_loss_activates_preconfigured_and_withdraws_overlapping_active_requests() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, preconfigured(&["2001:db8:6401::/64"]), T0).unwrap();
    put(&mut t, "a", 2, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    put(&mut t, "a", 3, scope(&["192.0.2.1/32"]), T0).unwrap();
    t.delete("a", 2, T0); // terminating, yet withdrawn at once below
    let ev = t.session_lost("a", T0 + 100 * S);
    assert_eq!(status(&t, "a", 1), Some(Status::AttackMitigationInProgress));
    let m = t.mitigation("a", 1).unwrap();
    assert_eq!((m.mitigation_start, m.activated_by_signal_loss), (Some(T0 / 1000 + 100), true));
    assert!(ev.contains(&status_event("a", 2, Status::AttackMitigationWithdrawn)));
    assert!(ev.contains(&DotsEvent::Removed {
        cuid: "a".into(),
        mid: 2,
        reason: RemovalReason::WithdrawnOnSignalLoss
    }));
    assert_eq!(enforcement_keys(&ev), keys(&[("a", 1), ("a", 2)]), "the preconfigured one comes, the overlapped one goes");
    // No active-but-terminating period, and mid 3 does not overlap.
    assert_eq!(mids(&t, "a"), vec![1, 3]);
    assert_eq!(enforced_mids(&t), vec![("a".to_string(), 1), ("a".to_string(), 3)]);
}

#[test]
fn session_recovery_does_not_stop_signal_loss_mitigations() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, preconfigured(&["2001:db8:6401::/64"]), T0).unwrap();
    t.session_lost("a", T0);
    t.confirm_enforced("a", 1);
    assert!(t.session_resumed("a", T0 + S).is_empty());
    assert_eq!(status(&t, "a", 1), Some(Status::AttackSuccessfullyMitigated));
    // It ends by the normal triggers: DELETE, here.
    t.delete("a", 1, T0 + 2 * S);
    assert_eq!(status(&t, "a", 1), Some(Status::DotsClientWithdrawnMitigation));
}

#[test]
fn immediate_request_withdraws_an_active_preconfigured_one_7_then_8() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 5, preconfigured(&["2001:db8:6401::/64"]), T0).unwrap();
    t.session_lost("a", T0);
    let out = put(&mut t, "a", 6, scope(&["2001:db8:6401::1/128"]), T0 + S).unwrap();
    assert!(out.events.contains(&status_event("a", 5, Status::AttackMitigationWithdrawn)));
    assert_eq!(enforced_mids(&t), vec![("a".to_string(), 6)]);
    assert_eq!(t.next_deadline(), Some(T0 + S + 12 * S));
    let ev = t.tick(T0 + 13 * S);
    assert!(ev.contains(&status_event("a", 5, Status::AttackMitigationSignalLoss)));
    // Kept for the next loss, not enforced.
    assert_eq!(mids(&t, "a"), vec![5, 6]);
    assert_eq!(enforced_mids(&t), vec![("a".to_string(), 6)]);
}

#[test]
fn attack_stopped_on_a_preconfigured_request_moves_to_8_after_the_hold() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, preconfigured(&["2001:db8:6401::/64"]), T0).unwrap();
    t.session_lost("a", T0);
    let ev = t.set_status("a", 1, Status::AttackStopped, T0 + S).unwrap();
    assert!(ev.contains(&status_event("a", 1, Status::AttackStopped)));
    assert_eq!(enforced_mids(&t).len(), 1);
    let ev = t.tick(T0 + 13 * S);
    assert!(ev.contains(&status_event("a", 1, Status::AttackMitigationSignalLoss)));
    assert_eq!(enforcement_keys(&ev), keys(&[("a", 1)]));
}

#[test]
fn set_status_accepts_only_1_to_4_on_active_mitigations() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    let ev = t.set_status("a", 1, Status::AttackExceededCapability, T0).unwrap();
    assert!(ev.contains(&status_event("a", 1, Status::AttackExceededCapability)));
    let err = t.set_status("a", 1, Status::AttackMitigationTerminated, T0).unwrap_err();
    assert_eq!(err.code, ResponseCode::BAD_REQUEST);
    assert_eq!(t.set_status("a", 9, Status::AttackStopped, T0).unwrap_err().code, ResponseCode::NOT_FOUND);
}

// ------------------------------------------------------------- 4.4.2

#[test]
fn get_of_another_clients_mid_is_4_04() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 1, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    assert_eq!(t.get("b", Some(1)).unwrap_err().code, ResponseCode::NOT_FOUND);
    // "the same error MUST be returned ... if the DOTS server does not find
    // any mitigation record for that DOTS client".
    assert_eq!(t.get("b", None).unwrap_err().code, ResponseCode::NOT_FOUND);
    assert_eq!(t.get("a", Some(1)).unwrap().len(), 1);
}

#[test]
fn response_scope_reports_remaining_lifetime_and_status() {
    let mut t = MitigationTable::default();
    put(&mut t, "a", 12332, scope(&["2001:db8:6401::1/128"]), T0).unwrap();
    let s = t.mitigation("a", 12332).unwrap().to_scope(T0 + 1844 * S);
    assert_eq!(s.mid, Some(12332));
    assert_eq!(s.lifetime, Some(Lifetime::Seconds(1756)));
    assert_eq!(s.status, Some(Status::AttackMitigationInProgress));
    assert_eq!((s.cuid, s.attack_status), (None, None));
}

#[test]
fn enforced_scopes_carry_prefixes_ports_and_protocols() {
    let mut t = MitigationTable::default();
    let mut s = scope(&["2001:db8:6401::1/128"]);
    s.target.target_port_range =
        vec![PortRange { lower_port: 80, upper_port: None }, PortRange { lower_port: 1024, upper_port: Some(2048) }];
    s.target.target_protocol = vec![6];
    s.target.alias_name = vec!["web".into()];
    t.put(&client("a"), validated("a", 1, s), vec!["2001:db8:6401::2/128".parse().unwrap()], false, T0).unwrap();
    let e: Vec<EnforcedScope> = t.enforced().collect();
    assert_eq!(e.len(), 1);
    let want: Vec<IpNet> = vec!["2001:db8:6401::1/128".parse().unwrap(), "2001:db8:6401::2/128".parse().unwrap()];
    assert_eq!(e[0].prefixes, want);
    assert_eq!(e[0].ports, vec![80..=80, 1024..=2048]);
    assert_eq!(e[0].protocols, vec![6]);
}

// ---------------------------------------------------------- storage

#[test]
fn serde_round_trip_restores_remaining_lifetimes() {
    let mut t = MitigationTable::default();
    let s = Scope { lifetime: Some(Lifetime::Seconds(600)), ..scope(&["2001:db8:6401::1/128"]) };
    put(&mut t, "a", 1, s, T0).unwrap();
    put(&mut t, "a", 2, preconfigured(&["192.0.2.0/24"]), T0).unwrap();
    put(&mut t, "b", 7, Scope { lifetime: Some(Lifetime::Indefinite), ..scope(&["2001:db8:9::/48"]) }, T0).unwrap();
    t.delete("b", 7, T0 + 10 * S);
    let json = serde_json::to_string(&t).unwrap();
    // One row per mitigation, as the registry stores them.
    let row = serde_json::to_string(t.mitigation("a", 1).unwrap()).unwrap();
    assert_eq!(serde_json::from_str::<Mitigation>(&row).unwrap(), *t.mitigation("a", 1).unwrap());

    // "Restart" 100 s later.
    let mut back: MitigationTable = serde_json::from_str(&json).unwrap();
    assert_eq!(back.iter().cloned().collect::<Vec<_>>(), t.iter().cloned().collect::<Vec<_>>());
    let later = T0 + 100 * S;
    assert_eq!(back.mitigation("a", 1).unwrap().remaining_lifetime(later), Lifetime::Seconds(500));
    assert_eq!(back.mitigation("b", 7).unwrap().status, Status::DotsClientWithdrawnMitigation);
    assert_eq!(back.next_deadline(), Some(T0 + 130 * S));
    // The terminating period and the lifetime keep running across it.
    back.tick(T0 + 130 * S);
    assert!(back.mitigation("b", 7).is_none());
    back.tick(T0 + 600 * S);
    assert!(back.mitigation("a", 1).is_none());
}

// ------------------------------------------------------ whole state

#[test]
fn session_params_follow_mitigating_and_idle_config() {
    let mut st = DotsState::new(DotsPolicy::default());
    let body = SignalConfig {
        sid: None,
        mitigating_config: Some(dots_proto::signal::ConfigParameters {
            heartbeat_interval: Some(IntParam::current(15)),
            ..Default::default()
        }),
        idle_config: Some(dots_proto::signal::ConfigParameters {
            heartbeat_interval: Some(IntParam::current(0)),
            ..Default::default()
        }),
    };
    st.put_config("a", Some(1), &body, T0).unwrap();
    assert_eq!(st.session_params("a").heartbeat_interval, 0);
    let out = st.put_mitigation(&client("a"), validated("a", 1, scope(&["192.0.2.1/32"])), vec![], false, T0).unwrap();
    assert!(out.events.contains(&DotsEvent::ActivityChanged { cuid: "a".into(), mitigating: true }));
    assert_eq!(st.session_params("a").heartbeat_interval, 15);
    st.delete_mitigation("a", 1, T0);
    assert_eq!(st.session_params("a").heartbeat_interval, 15, "terminating is still mitigating");
    let ev = st.tick(T0 + 120 * S);
    assert!(ev.contains(&DotsEvent::ActivityChanged { cuid: "a".into(), mitigating: false }));
    assert_eq!(st.session_params("a").heartbeat_interval, 0);
}

// ------------------------------------------------------------ RFC 9133

fn with_acl(s: Scope, name: &str) -> Scope {
    let acl = dots_proto::signal::ControlAcl {
        acl_name: name.into(),
        activation_type: Some(dots_proto::signal::ActivationType::Immediate),
    };
    Scope { acl_list: vec![acl], ..s }
}

#[test]
fn acl_list_needs_an_active_mitigation_and_a_new_mid() {
    let mut t = MitigationTable::default();
    // 'idle' time: refused, nothing stored.
    let e = put(&mut t, "a", 1, with_acl(scope(&["192.0.2.1/32"]), "x"), T0).unwrap_err();
    assert_eq!(e.code, ResponseCode::BAD_REQUEST);
    assert!(e.diagnostic.contains("idle"), "{e}");
    assert!(mids(&t, "a").is_empty());
    // A preconfigured request (status 8) is not active either.
    put(&mut t, "a", 2, preconfigured(&["192.0.2.2/32"]), T0).unwrap();
    assert_eq!(put(&mut t, "a", 3, with_acl(scope(&["192.0.2.1/32"]), "x"), T0).unwrap_err().code, ResponseCode::BAD_REQUEST);
    // Mitigating: a new mid is accepted and keeps its acl-list for GET.
    put(&mut t, "a", 4, scope(&["192.0.2.4/32"]), T0).unwrap();
    put(&mut t, "a", 5, with_acl(scope(&["192.0.2.5/32"]), "x"), T0).unwrap();
    assert_eq!(t.mitigation("a", 5).unwrap().to_scope(T0).acl_list[0].acl_name, "x");
    // ... durably: the stored row (JSON) keeps it.
    let m = t.mitigation("a", 5).unwrap();
    let row = serde_json::to_string(m).unwrap();
    assert!(row.contains(r#""acl_list":[{"acl-name":"x","activation-type":2}]"#), "{row}");
    assert_eq!(&serde_json::from_str::<Mitigation>(&row).unwrap(), m);
    // On an existing mid: a refresh must repeat, so 4.00 and no change.
    let e = put(&mut t, "a", 4, with_acl(scope(&["192.0.2.4/32"]), "x"), T0 + S).unwrap_err();
    assert!(e.code == ResponseCode::BAD_REQUEST && e.diagnostic.contains("new"), "{e}");
    assert_eq!(t.mitigation("a", 4).unwrap().expires_ms, Some(T0 + 3600 * S));
    // Another client's mitigation does not make this one mitigating.
    assert_eq!(put(&mut t, "b", 1, with_acl(scope(&["192.0.2.9/32"]), "x"), T0).unwrap_err().code, ResponseCode::BAD_REQUEST);
    // The same acl-list again on its own mid (a re-send whose 2.01 was
    // lost, or a refresh) is a refresh: 2.04, lifetime renewed.
    let again = put(&mut t, "a", 5, with_acl(scope(&["192.0.2.5/32"]), "x"), T0 + S).unwrap();
    assert_eq!(again.response.code(), Some(ResponseCode::CHANGED));
    assert_eq!(t.mitigation("a", 5).unwrap().expires_ms, Some(T0 + S + 3600 * S));
    // ... but another acl-list on that mid is a change: 4.00.
    let e = put(&mut t, "a", 5, with_acl(scope(&["192.0.2.5/32"]), "y"), T0 + S).unwrap_err();
    assert_eq!(e.code, ResponseCode::BAD_REQUEST);
}

/// The keys of the `EnforcementChanged` event, if there is one.
fn enforcement_keys(events: &[DotsEvent]) -> Option<std::collections::BTreeSet<(String, u32)>> {
    events.iter().find_map(|e| match e {
        DotsEvent::EnforcementChanged { keys } => Some(keys.iter().cloned().collect()),
        _ => None,
    })
}

fn keys(k: &[(&str, u32)]) -> Option<std::collections::BTreeSet<(String, u32)>> {
    Some(k.iter().map(|(c, m)| (c.to_string(), *m)).collect())
}
