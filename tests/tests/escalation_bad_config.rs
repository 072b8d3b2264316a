//! Bad `[[upstream]]` / `[escalation]` configuration: `mitigator run`
//! refuses to start, names the line and the field, and touches nothing
//! (the config is checked before the data plane is loaded).

use std::path::PathBuf;

use mitigator_tests::daemon::mitigator_bin;

fn run_with(name: &str, text: &str) -> (i32, String) {
    let dir = PathBuf::from(format!("/tmp/mitigator-test-badup-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("m.toml");
    let full = format!(
        "[daemon]\nsocket = \"{d}/s.sock\"\nstate_dir = \"{d}/state\"\n\n[dataplane]\npin_dir = \"/sys/fs/bpf/mitigator-test-badup-{name}\"\ninterfaces = [\"does-not-exist0\"]\n\n{text}",
        d = dir.display()
    );
    std::fs::write(&cfg, full).unwrap();
    let out = std::process::Command::new(mitigator_bin()).args(["run", "--config", cfg.to_str().unwrap()]).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

const PSK: &str = "psk_identity = \"h\"\npsk_key = \"00ff\"\n";

#[test]
fn escalation_bad_upstream_config_names_the_line_and_field() {
    // Lines 1-8 are the preamble above; `[[upstream]]` is line 9, `name` line 10.
    let (code, e) = run_with("addr", &format!("[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1:0\"\n{PSK}"));
    assert_ne!(code, 0);
    assert!(e.contains("line 11") && e.contains("server") && e.contains("bad server address"), "{e}");

    let (code, e) = run_with("cred", "[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\n");
    assert_ne!(code, 0);
    assert!(e.contains("line 10") && e.contains("upstream \"A\"") && e.contains("no credential"), "{e}");

    let (code, e) = run_with("key", "[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\npsk_identity = \"h\"\npsk_key = \"xyz\"\n");
    assert_eq!(code, 2, "a bad config is a bad argument: {e}");
    // The psk_key line itself (13), and what is wrong with the value.
    assert!(e.contains("line 13") && e.contains("psk_key") && e.contains("`x` at position 1 is not a hex digit"), "{e}");
    let (_, e) = run_with("odd", "[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\npsk_identity = \"h\"\npsk_key = \"abc\"\n");
    assert!(e.contains("line 13") && e.contains("3 hex digits"), "{e}");

    let (code, e) = run_with("file", "[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\nca = \"/nonexistent/ca.pem\"\n");
    assert_ne!(code, 0);
    // The cert line (12), before anything is touched.
    assert!(e.contains("line 12, upstream \"A\": cert: cannot read /nonexistent/c.pem"), "{e}");
    assert!(!e.contains("attach"), "nothing was attached: {e}");

    let (code, e) = run_with("fb", &format!("[[upstream]]\nname = \"A\"\nserver = \"192.0.2.1\"\nfallback = [\"C\"]\n{PSK}"));
    assert_ne!(code, 0);
    assert!(e.contains("fallback") && e.contains("\"C\""), "{e}");

    let (code, e) = run_with("th", "[escalation]\nhigh = 0.3\nlow = 0.6\n");
    assert_ne!(code, 0);
    assert!(e.contains("escalation.low"), "{e}");

    let (code, e) = run_with("gw", "[gateway]\nenabled = true\n");
    assert_ne!(code, 0);
    assert!(e.contains("gateway.enabled"), "{e}");
}
