//! `cargo xtask setup`: installs what the project needs and is missing, and
//! skips what is there. Each step says what it does; a step that cannot be
//! done says what to run by hand.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context};

use crate::{run, step};

/// Debian packages: the real peers and tools the tests and the demo use.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "network namespaces and veth"),
    ("util-linux", "nsenter"),
    ("bpftool", "inspecting BPF programs and maps"),
    ("xdp-tools", "xdp-filter, the side-by-side baseline"),
    ("ethtool", "GRO and TSO settings of the bench's direct veth link"),
    ("libcoap3-bin", "coap-client-openssl, the third-party DOTS/CoAP client"),
    ("tshark", "packet captures in tests"),
    ("nftables", "the nftables baseline"),
    ("netsniff-ng", "trafgen, the flood generator"),
    ("hping3", "floods in the demo"),
    ("clang", "compiles the XDP_PASS floor and the flood generator of cargo xtask bench"),
    ("curl", "the API and data-channel tests"),
    ("openssl", "certificates"),
    ("libssl-dev", "OpenSSL headers for the DTLS transport (openssl crate)"),
    ("pkg-config", "finding OpenSSL at build time"),
];

pub fn setup() -> anyhow::Result<()> {
    if unsafe_geteuid() != 0 {
        bail!("setup installs packages and loads XDP programs: run it as root (sudo -E cargo xtask setup)");
    }
    debian_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    step("setup complete");
    Ok(())
}

fn unsafe_geteuid() -> u32 {
    // Reading the effective uid has no safety requirement; std has no API.
    Command::new("id").arg("-u").output().ok().and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(1)
}

fn debian_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(pkg, _)| !dpkg_installed(pkg))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        step("Debian packages: all present");
        return Ok(());
    }
    for (pkg, why) in DEBIAN_PACKAGES.iter().filter(|(p, _)| missing.contains(p)) {
        step(&format!("Debian package {pkg} is missing ({why})"));
    }
    step("apt-get update");
    run(Command::new("apt-get").args(["update", "-qq"]))
        .context("apt-get update failed: check the machine's Debian mirror configuration")?;
    step(&format!("apt-get install {}", missing.join(" ")));
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))
    .with_context(|| format!("cannot install {}: try `apt-get install {}` by hand", missing.join(" "), missing.join(" ")))?;
    Ok(())
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn nightly_sysroot() -> anyhow::Result<PathBuf> {
    let out = Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]).output()?;
    if !out.status.success() {
        bail!("no nightly toolchain: install it with `rustup toolchain install nightly --profile minimal`");
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

fn nightly_rust_src() -> anyhow::Result<()> {
    let sysroot = match nightly_sysroot() {
        Ok(s) => s,
        Err(_) => {
            step("nightly toolchain missing: rustup toolchain install nightly --profile minimal");
            run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
            nightly_sysroot()?
        }
    };
    if sysroot.join("lib/rustlib/src/rust/library/core").exists() {
        step("nightly rust-src: present");
        return Ok(());
    }
    step("rustup component add rust-src --toolchain nightly");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
        .context("cannot add rust-src to the nightly toolchain")
}

/// bpf-linker 0.13 links against rustc's own LLVM: a folder whose
/// lib/libLLVM.so points at the nightly sysroot's libLLVM is its prefix.
fn bpf_linker() -> anyhow::Result<()> {
    let sysroot = nightly_sysroot()?;
    // bpf-linker loads the nightly's libLLVM at run time (rustc puts the
    // sysroot's lib/ on the library path when it calls the linker), so it
    // is checked the same way: a bpf-linker built against an older nightly
    // fails here and is rebuilt.
    let works = Command::new("bpf-linker")
        .arg("--version")
        .env("LD_LIBRARY_PATH", sysroot.join("lib"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if works {
        step("bpf-linker: present");
        return Ok(());
    }
    let llvm = std::fs::read_dir(sysroot.join("lib"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))))
        .context("the nightly sysroot has no libLLVM shared library; cannot build bpf-linker")?;
    let major = llvm
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.trim_start_matches("libLLVM.so.").trim_start_matches("libLLVM-").split(['.', '-']).next().map(str::to_owned))
        .context("cannot tell the LLVM version of the nightly toolchain")?;
    let prefix = home().join(".cache/mitigator-llvm");
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)?;
    step(&format!("cargo install bpf-linker (against rustc's LLVM {major}, about 2 minutes)"));
    run(Command::new("cargo")
        .env("LLVM_PREFIX", &prefix)
        .args(["install", "bpf-linker", "--force", "--locked", "--no-default-features", "--features"])
        .arg(format!("llvm-{major}")))
    .context("cannot build bpf-linker; see DESIGN.md's toolchain facts")
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| "/root".into())
}
