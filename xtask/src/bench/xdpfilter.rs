//! xdp-filter (xdp-tools), the side-by-side baseline: loaded on a lab
//! host's veth, with its own bpffs (LIBXDP_BPFFS) so that its pinned maps
//! meet no other xdp-filter on the machine, and without libxdp's dispatcher
//! (LIBXDP_SKIP_DISPATCHER) so that the program we test-run is xdp-filter's
//! own, not a dispatcher calling it.

use std::{collections::BTreeSet, path::Path, process::Command};

use anyhow::{bail, Context};
use mitigator_tests::Host;

use super::progrun::{PrivateBpffs, Prog};

pub struct XdpFilter {
    host: Host,
    bpffs: PrivateBpffs,
    /// The program xdp-filter chose for its features (e.g. xdpfilt_alw_ip).
    pub prog_name: String,
    pub prog: Prog,
}

/// Ids and names of the loaded programs called xdpfilt_*.
fn xdpfilt_progs() -> anyhow::Result<Vec<(u32, String)>> {
    let out = Command::new("bpftool").args(["-j", "prog", "show"]).output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("bpftool prog show")?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_u64()? as u32, p["name"].as_str()?.to_string())))
        .filter(|(_, n)| n.starts_with("xdpfilt_"))
        .collect())
}

impl XdpFilter {
    fn cmd(&self, args: &[&str]) -> anyhow::Result<()> {
        xdp_filter(&self.host, &self.bpffs.dir, args)
    }

    /// `xdp-filter load -m native -f <features> eth0` on `host`, then each
    /// rule (`xdp-filter <rule…>`).
    pub fn load(host: &Host, bpffs_dir: &Path, features: &str, rules: &[&[&str]]) -> anyhow::Result<XdpFilter> {
        let bpffs = PrivateBpffs::mount(bpffs_dir)?;
        let before: BTreeSet<u32> = xdpfilt_progs()?.into_iter().map(|p| p.0).collect();
        xdp_filter(host, &bpffs.dir, &["load", "-m", "native", "-f", features, "eth0"])?;
        let new: Vec<(u32, String)> = xdpfilt_progs()?.into_iter().filter(|p| !before.contains(&p.0)).collect();
        let [(id, name)] = new.as_slice() else { bail!("expected one new xdpfilt_* program, found {new:?}") };
        let f = XdpFilter { host: host.clone(), bpffs, prog_name: name.clone(), prog: Prog::Id(*id) };
        for r in rules {
            f.cmd(r)?;
        }
        Ok(f)
    }
}

fn xdp_filter(host: &Host, bpffs: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = host
        .command("xdp-filter")
        .args(args)
        .env("LIBXDP_BPFFS", bpffs)
        .env("LIBXDP_SKIP_DISPATCHER", "1")
        .output()
        .context("running xdp-filter")?;
    if !out.status.success() {
        bail!("xdp-filter {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Drop for XdpFilter {
    fn drop(&mut self) {
        let _ = self.cmd(&["unload", "eth0"]);
    }
}
