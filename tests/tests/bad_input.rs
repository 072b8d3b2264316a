//! Scenario: an operator mistypes. A bad prefix, port, protocol or
//! countermeasure on the CLI, a bad request body on the API, or a bad config
//! file is refused with the field and the value named, and changes nothing.

use std::process::Command;

use mitigator_tests::{daemon::mitigator_bin, Daemon, Lab};

#[test]
fn cli_and_api_refuse_bad_values_and_change_nothing() -> anyhow::Result<()> {
    let mut lab = Lab::new("mtg-bi")?;
    let host = lab.add_host("host", 10)?;
    let d = Daemon::start(&host, "bad-input", "interfaces = [\"eth0\"]", "")?;
    d.cli(&["protect", "203.0.113.10", "--proto", "tcp", "--port", "443"])?;
    d.cli(&["lists", "drop", "--add", "198.51.100.0/24"])?;
    let before = d.status()?;

    // Refused by the CLI itself (exit 2, usage) with the value named.
    for (args, needle) in [
        (&["protect", "203.0.113.300"][..], "203.0.113.300"),
        (&["protect", "203.0.113.11", "--port", "70000"][..], "70000"),
        (&["protect", "203.0.113.11", "--port", "90-80"][..], "90-80"),
        (&["protect", "203.0.113.11", "--proto", "tcpx"][..], "tcpx"),
        (&["protect", "203.0.113.11", "--countermeasure", "nuke"][..], "nuke"),
        (&["protect", "203.0.113.11", "--countermeasure", "rate-limit:pps=abc"][..], "pps=abc"),
        (&["protect", "127.0.0.1"][..], "loopback"),
        (&["protect", "203.0.113.11", "--lifetime", "18446744073709551615"][..], "ten years"),
        (&["lists", "drop", "--add", "10.0.0.1/8"][..], "host bits"),
    ] {
        let out = d.cli_raw(args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    // Refused by the daemon (exit 3) with the reason.
    for (args, needle) in [
        (&["protect", "203.0.113.10"][..], "already protected"),
        (&["protect", "203.0.113.11", "--profile", "nosuch"][..], "profile `nosuch`"),
        (&["unprotect", "42"][..], "protection 42"),
        (&["unprotect", "203.0.113.99"][..], "203.0.113.99/32"),
    ] {
        let out = d.cli_raw(args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    // The API refuses bad bodies the same way.
    for (body, needle) in [
        ("{not json", "bad request body"),
        (r#"{"prefixes": ["203.0.113.12/32"], "countermeasures": ["nuke"]}"#, "nuke"),
        (r#"{"prefixes": ["127.0.0.1/32"]}"#, "loopback"),
        (r#"{"prefixes": []}"#, "at least one target prefix"),
        (r#"{"prefixes": ["203.0.113.12/32"], "ports": [{"lo": 9, "hi": 1}]}"#, "ports"),
        // Once a panic in the registry's time arithmetic (issue 21).
        (r#"{"prefixes": ["203.0.113.12/32"], "lifetime": 18446744073709551615}"#, "ten years"),
    ] {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(&d.socket)
            .args(["-X", "POST", "-H", "content-type: application/json", "-d", body, "http://mitigator/v1/protections"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.trim_end().ends_with("400") || text.trim_end().ends_with("422"), "{body}: {text}");
        assert!(text.contains(needle), "{body}: {text}");
    }

    let after = d.status()?;
    assert_eq!(before["protections"], after["protections"], "nothing changed");
    assert_eq!(before["drop_list"], after["drop_list"]);
    Ok(())
}

#[test]
fn a_bad_config_file_names_the_line_and_the_field() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join("mitigator-bad-config");
    std::fs::create_dir_all(&dir)?;
    for (text, needles) in [
        ("[dataplane]\nattach_mode = \"native\"\nreflection_ports = [53, 99999]\n", &["line 3", "reflection_ports"][..]),
        ("[dataplane]\ninterfacez = [\"eth0\"]\n", &["line 2", "interfacez"][..]),
        ("[profiles.web]\ncountermeasures = [\"syn-limit:pps=x\"]\n", &["line 2", "pps=x"][..]),
        ("[daemon]\nsocket = 5\n", &["line 2", "socket"][..]),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text)?;
        let out = Command::new(mitigator_bin()).args(["run", "--config"]).arg(&path).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        for n in needles {
            assert!(err.contains(n), "{text}: {err}");
        }
        assert!(err.contains("bad.toml"), "the file is named: {err}");
    }
    Ok(())
}
