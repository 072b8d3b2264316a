//! `mitigator run`: open (or adopt) the data plane, attach it, restore the
//! registry from the store, serve the local API until told to stop.

use std::path::Path;

use anyhow::Context;
use tokio::{signal::unix::{signal, SignalKind}, sync::watch};
use tracing::{info, warn};

use crate::{
    api,
    config::{AttachModeConfig, Config},
    dataplane::{AttachMode, Dataplane, DataplaneOptions},
    registry::Registry,
    store::Store,
};

pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

pub async fn run(config: Option<&Path>) -> anyhow::Result<()> {
    let cfg = match config {
        Some(path) => Config::load(path)?,
        None => Config::parse("").map_err(anyhow::Error::msg)?,
    };
    init_logging(&cfg.daemon.log);
    // Upstream credentials are read before the data plane is touched, so a
    // bad [[upstream]] changes nothing.
    for u in &cfg.upstream {
        crate::escalation::upstream::client_config(u, &cfg)?;
    }
    info!(config = ?config, socket = %cfg.daemon.socket.display(), "mitigator starting");

    let bpffs_before = crate::dataplane::is_bpffs(Path::new("/sys/fs/bpf"));
    let mut dataplane = Dataplane::open(&DataplaneOptions {
        pin_dir: Some(cfg.dataplane.pin_dir.clone()),
        dst_cache: cfg.dataplane.dst_cache,
        grace: std::time::Duration::from_millis(cfg.dataplane.grace_ms),
    })
        .context("cannot load the XDP program (are you root, and is bpffs mounted at /sys/fs/bpf?)")?;
    warn_if_private_bpffs(&cfg.dataplane.pin_dir, bpffs_before);
    attach_all(&mut dataplane, &cfg)?;
    let store = Store::open(&cfg.daemon.state_dir)?;
    let registry = Registry::start(cfg.clone(), store, dataplane)?;
    // Sessions with every upstream server from the start (RFC 9284 5.1).
    let upstreams = match cfg.upstream.is_empty() {
        true => None,
        false => Some(std::sync::Arc::new(crate::escalation::Upstreams::start(&cfg).context("[[upstream]]")?)),
    };
    let _escalation = upstreams.as_ref().map(|up| crate::escalation::start(&cfg, registry.clone(), up.clone()));
    let gateway = match (&upstreams, cfg.gateway.enabled) {
        (Some(up), true) => Some(crate::gateway::Gateway::new(&cfg, up.clone(), registry.clone())),
        _ => None,
    };
    if cfg.gateway.enabled && !cfg.signal.enabled {
        warn!("gateway.enabled without signal.enabled: no downstream client can reach the gateway");
    }
    // Kept until the daemon stops: dropping it closes the listeners.
    let _signal = match cfg.signal.enabled {
        true => Some(
            crate::signal::start_with_gateway(&cfg, registry.clone(), gateway)
                .await
                .context("DOTS signal channel ([signal])")?,
        ),
        false => None,
    };
    let _data_channel = match cfg.data_channel.enabled {
        true => Some(crate::datachannel::start(&cfg, registry.clone()).await.context("DOTS data channel ([data_channel])")?),
        false => None,
    };

    let (stop, _) = watch::channel(false);
    let server = tokio::spawn({
        let (socket, registry, stop) = (cfg.daemon.socket.clone(), registry.clone(), stop.clone());
        async move { api::serve(&socket, registry, stop).await }
    });
    info!(socket = %cfg.daemon.socket.display(), "local API ready");

    let mut term = signal(SignalKind::terminate())?;
    let mut stopped = stop.subscribe();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => signalled(&registry, &stop).await,
        _ = term.recv() => signalled(&registry, &stop).await,
        _ = stopped.wait_for(|s| *s) => info!("stopped through the API"),
    }
    server.await.context("API task")??;
    info!("mitigator stopped");
    Ok(())
}

/// A signal stops the daemon but leaves the pinned data plane enforcing, so
/// a restart or upgrade never leaves the host unprotected.
async fn signalled(registry: &Registry, stop: &watch::Sender<bool>) {
    info!("signal received; stopping (the data plane keeps enforcing; `mitigator stop` detaches it)");
    if let Err(e) = registry.shutdown(false).await {
        warn!(error = %e, "registry shutdown");
    }
    let _ = stop.send(true);
}

fn attach_all(dataplane: &mut Dataplane, cfg: &Config) -> anyhow::Result<()> {
    let ifaces = if cfg.dataplane.interfaces.is_empty() {
        up_interfaces()?
    } else {
        cfg.dataplane.interfaces.clone()
    };
    if ifaces.is_empty() {
        warn!("no interface to attach to: no non-loopback interface is up; set dataplane.interfaces");
    }
    let mode = match cfg.dataplane.attach_mode {
        AttachModeConfig::Auto => AttachMode::Auto,
        AttachModeConfig::Native => AttachMode::Native,
        AttachModeConfig::Generic => AttachMode::Generic,
    };
    for iface in ifaces {
        let attached = dataplane
            .attach(&iface, mode)
            .with_context(|| format!("cannot attach the XDP program to {iface} (dataplane.interfaces, dataplane.attach_mode)"))?;
        match dataplane.attachment(&iface) {
            Some(how) if how.against_advice => warn!(%iface, mode = %how.mode, reason = %how.reason, "attached"),
            Some(how) => info!(%iface, mode = %how.mode, reason = %how.reason, "attached"),
            None => info!(%iface, mode = ?attached, "attached"),
        }
    }
    Ok(())
}

/// Non-loopback interfaces that are up, in this network namespace.
pub fn up_interfaces() -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a linked list that we walk read-only and free
    // with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut addrs) != 0 {
            return Err(std::io::Error::last_os_error()).context("getifaddrs");
        }
        let mut cur = addrs;
        while !cur.is_null() {
            let ifa = &*cur;
            let flags = ifa.ifa_flags as i32;
            if flags & libc::IFF_UP != 0 && flags & libc::IFF_LOOPBACK == 0 && !ifa.ifa_name.is_null() {
                let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(addrs);
    }
    Ok(out)
}

/// Warns when the pins would be private to this process: `ip netns exec`
/// gives the command a mount namespace of its own with a fresh /sys, where
/// no bpffs is mounted, so the one we mount there is not the machine's: the
/// pins die with the daemon, nothing enforces while it restarts, and
/// `mitigator uninstall` from outside cannot see them. Told apart from a
/// host that simply had no bpffs mounted (a minimal VM: we mount the
/// machine's) by the mount namespace, which differs from our parent's; and
/// from a sandboxed systemd service (a mount namespace of its own, but the
/// machine's bpffs in it) by /sys/fs/bpf having been a bpffs already.
fn warn_if_private_bpffs(pin_dir: &Path, bpffs_before: bool) {
    if bpffs_before || !pin_dir.starts_with("/sys/fs/bpf") {
        return;
    }
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let parent = std::os::unix::process::parent_id().to_string();
    match (ns("self"), ns(&parent)) {
        (Some(ours), Some(theirs)) if ours != theirs => tracing::warn!(
            pin_dir = %pin_dir.display(),
            "the bpffs at /sys/fs/bpf is private to this process (started with `ip netns exec`?): the pins die with the \
             daemon and nothing enforces while it restarts; start it with `nsenter --net=/run/netns/NAME mitigator run`, \
             which keeps the machine's mounts, or set dataplane.pin_dir on a bpffs the machine keeps"
        ),
        _ => {}
    }
}
