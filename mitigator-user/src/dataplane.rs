//! TEMPORARY placeholder with the agreed API, replaced by the real module
//! from the data-plane work at merge time.
#![allow(dead_code, unused_variables)]
use std::{path::PathBuf, time::Duration};

use ipnet::IpNet;
use mitigator_common::{IfaceStats, Policy, TargetStats};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode { Native, Generic, Auto }
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode { Native, Generic }
pub struct DataplaneOptions { pub pin_dir: Option<PathBuf> }
pub struct Dataplane;
pub struct RuleSet { pub targets: Vec<TargetRule>, pub accept: Vec<IpNet>, pub drop: Vec<IpNet> }
pub struct TargetRule { pub id: u32, pub prefixes: Vec<IpNet>, pub policy: Policy }
impl Dataplane {
    pub fn open(opts: &DataplaneOptions) -> anyhow::Result<Self> { todo!() }
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> anyhow::Result<AttachedMode> { todo!() }
    pub fn detach(&mut self, iface: &str) -> anyhow::Result<()> { todo!() }
    pub fn uninstall(self) -> anyhow::Result<()> { todo!() }
    pub fn apply(&mut self, rules: &RuleSet) -> anyhow::Result<()> { todo!() }
    pub fn set_reflection_ports(&mut self, ports: &[u16]) -> anyhow::Result<()> { todo!() }
    pub fn target_stats(&self, id: u32) -> anyhow::Result<TargetStats> { todo!() }
    pub fn reset_target_stats(&mut self, id: u32) -> anyhow::Result<()> { todo!() }
    pub fn iface_stats(&self) -> anyhow::Result<Vec<(u32, IfaceStats)>> { todo!() }
    pub fn test_run(&self, packet: &[u8]) -> anyhow::Result<u32> { todo!() }
    pub fn test_run_repeat(&self, packet: &[u8], repeat: u32) -> anyhow::Result<(u32, Duration)> { todo!() }
}
pub fn remove_pins(dir: &std::path::Path) -> anyhow::Result<()> { todo!() }
