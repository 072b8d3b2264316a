//! RFC 9133, DOTS signal-channel control of filtering: a mitigation
//! request's 'ietf-dots-signal-control:acl-list' changes the activation
//! type of ACLs the same client installed over the data channel, for when
//! the attack makes the data channel unusable. RFC 9133's text is not in
//! shared/reference; its keys (53, 52, and 23 for 'acl-name') and
//! semantics follow the public implementation nttdots/go-dots.
//!
//! The change is the data channel's own (`dc_commit`: checked, stored,
//! enforced), so a data-channel GET shows it and it outlives the request.
//! It is all-or-nothing with the mitigation request that carries it.

use dots_proto::data::{ActivationType as DcActivation, Acls};
use dots_proto::signal::{ActivationType, ControlAcl};

use super::{DcClient, Owner_};
use crate::dots::Refusal;

/// The client's data-channel entry before and after the change.
pub(super) struct ControlPlan {
    pub old: DcClient,
    pub new: DcClient,
    /// "name=activation-type" of each changed ACL, for the log.
    pub summary: String,
}

impl Owner_ {
    /// What `acls` would make of the client's data-channel ACLs: 4.04 for
    /// a name the client has no ACL of, 4.00 when a changed ACL breaks a
    /// data-channel rule (7.2: an 'immediate' ACL needs a destination).
    /// None without an 'acl-list'.
    pub(super) fn control_plan(&self, cuid: &str, acls: &[ControlAcl]) -> Result<Option<ControlPlan>, Refusal> {
        let Some(first) = acls.first() else { return Ok(None) };
        let old = self.dc.clients.get(cuid).cloned().ok_or_else(|| unknown(&first.acl_name))?;
        let mut new = old.clone();
        for a in acls {
            let acl = new.acls.iter_mut().find(|x| x.name == a.acl_name).ok_or_else(|| unknown(&a.acl_name))?;
            acl.activation_type = Some(data_activation(a.effective_activation()));
        }
        let changed = Acls { acl: new.acls.iter().filter(|x| acls.iter().any(|a| a.acl_name == x.name)).cloned().collect() };
        dots_proto::data::validate::validate_acls(&changed, &crate::datachannel::server::policy(&self.cfg))
            .map_err(|e| Refusal::bad_request(format!("'ietf-dots-signal-control:acl-list': {e}")))?;
        let summary: Vec<String> = acls.iter().map(|a| format!("{}={}", a.acl_name, a.effective_activation())).collect();
        Ok(Some(ControlPlan { old, new, summary: summary.join(", ") }))
    }

    /// Stores and enforces the plan (or, with `undo`, puts back what was).
    pub(super) fn control_commit(&mut self, cuid: &str, plan: &ControlPlan, undo: bool) -> Result<(), Refusal> {
        let (from, to) = if undo { (&plan.new, &plan.old) } else { (&plan.old, &plan.new) };
        self.dc_commit(cuid, Some(from.clone()), Some(to.clone()))
            .map_err(|e| Refusal::new(dots_proto::signal::ResponseCode::new(5, 0), e.to_string()))
    }
}

fn unknown(name: &str) -> Refusal {
    Refusal::not_found(format!(
        "acl-name '{name}': this DOTS client installed no ACL of that name over the data channel (RFC 9133)"
    ))
}

/// RFC 9133 reuses RFC 8783's enumeration.
fn data_activation(a: ActivationType) -> DcActivation {
    match a {
        ActivationType::ActivateWhenMitigating => DcActivation::ActivateWhenMitigating,
        ActivationType::Immediate => DcActivation::Immediate,
        ActivationType::Deactivate => DcActivation::Deactivate,
    }
}
