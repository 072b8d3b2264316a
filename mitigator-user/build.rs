//! Builds the XDP program (`mitigator-ebpf`) for bpfel-unknown-none with the
//! nightly toolchain and bpf-linker, through aya-build, so that
//! `cargo build -p mitigator-user` is all a user runs. The object lands in
//! `$OUT_DIR/mitigator` and is embedded by `dataplane::load`.
//!
//! Set `AYA_BUILD_SKIP=1` to skip (e.g. for `cargo check` on a machine
//! without nightly); the embedded object is then an empty file and loading
//! fails at run time with a clear error.

fn main() -> anyhow::Result<()> {
    // aya-build already reruns on changes under mitigator-ebpf; the shared
    // layout is compiled into the object too.
    println!("cargo:rerun-if-changed=../mitigator-common/src");
    let skip = std::env::var_os("AYA_BUILD_SKIP")
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    if skip {
        // include_bytes_aligned! needs the file to exist.
        let obj = out_dir.join("mitigator");
        if !obj.exists() {
            std::fs::write(&obj, [])?;
        }
    }
    let ebpf = aya_build::Package {
        name: "mitigator-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../mitigator-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::default())
}
