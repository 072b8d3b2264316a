//! The DOTS data channel in a lab: curl (a real third-party HTTPS client)
//! with the client certificates that `mitigator certs` made, against the
//! daemon's RESTCONF server (`[data_channel]`, default port 4443) of a
//! [`SignalLab`], plus helpers to read ACE statistics.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::signal::SignalLab;

/// The data channel's RESTCONF root (RFC 8783 draft 29, 5.1).
pub const ROOT: &str = "/restconf/data/ietf-dots-data-channel:dots-data";
pub const PORT: u16 = 4443;

/// One HTTP exchange as curl saw it.
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Http {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The first RESTCONF error: (error-tag, error-path, error-message).
    pub fn error(&self) -> (String, String, String) {
        let e = &self.json()["ietf-restconf:errors"]["error"][0];
        let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
        (s("error-tag"), s("error-path"), s("error-message"))
    }
}

impl SignalLab {
    /// Waits until the data channel listens.
    pub fn wait_data_channel(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.daemon.log().contains("DOTS data channel ready") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("data channel not ready:\n{}", self.daemon.log())
    }

    /// `curl` from the client host with `who`'s certificate (None: none).
    /// `path` is relative to [`ROOT`] unless it starts with '/'. A body is
    /// sent as application/yang-data+json unless `content_type` says else.
    pub fn curl_with(&self, who: Option<&str>, method: &str, path: &str, body: Option<&str>, content_type: &str) -> anyhow::Result<Http> {
        let url_path = if path.starts_with('/') { path.to_string() } else if path.is_empty() { ROOT.to_string() } else { format!("{ROOT}/{path}") };
        let url = format!("https://203.0.113.10:{PORT}{url_path}");
        let mut cmd = self.client.command("curl");
        cmd.args(["-sS", "--max-time", "30", "-X", method, "--cacert", self.ca().to_str().unwrap()]);
        cmd.args(["-w", "\n%{http_code} %{content_type}", "-o", "-"]);
        if let Some(who) = who {
            let (cert, key) = self.cert(who);
            cmd.args(["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
        }
        if let Some(b) = body {
            let file = self.body_file(&format!("dc-body-{}.json", std::process::id()), b.as_bytes())?;
            cmd.args(["-H", &format!("Content-Type: {content_type}"), "--data-binary", &format!("@{file}")]);
        }
        cmd.arg(&url);
        let out = cmd.output().context("run curl")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            bail!("curl {method} {url} failed ({}): {}{}", out.status, String::from_utf8_lossy(&out.stderr), text);
        }
        let (body, last) = text.rsplit_once('\n').context("curl output without status line")?;
        let (code, ct) = last.split_once(' ').unwrap_or((last, ""));
        Ok(Http { status: code.trim().parse().context("status code")?, content_type: ct.trim().to_string(), body: body.to_string() })
    }

    pub fn curl(&self, who: &str, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Http> {
        self.curl_with(Some(who), method, path, body, "application/yang-data+json")
    }

    /// Registers `who` (POST, 5.1), expecting 201.
    pub fn register(&self, who: &str, cuid: &str) -> anyhow::Result<()> {
        let r = self.curl(who, "POST", "", Some(&format!(r#"{{"ietf-dots-data-channel:dots-client":[{{"cuid":"{cuid}"}}]}}"#)))?;
        if r.status != 201 {
            bail!("registration of {who}: {} {}", r.status, r.body);
        }
        Ok(())
    }

    /// PUT of one ACL (`acls/acl=NAME`), expecting 201 or 204.
    pub fn put_acl(&self, who: &str, cuid: &str, acl_json: &str) -> anyhow::Result<Http> {
        let name = serde_json::from_str::<Value>(acl_json)?["name"].as_str().context("acl name")?.to_string();
        let body = format!(r#"{{"ietf-dots-data-channel:acls":{{"acl":[{acl_json}]}}}}"#);
        let r = self.curl(who, "PUT", &format!("dots-client={cuid}/acls/acl={name}"), Some(&body))?;
        if r.status != 201 && r.status != 204 {
            bail!("PUT acl {name}: {} {}", r.status, r.body);
        }
        Ok(r)
    }

    /// (matched-packets, matched-octets) of every ACE of an ACL, by name.
    pub fn ace_stats(&self, who: &str, cuid: &str, acl: &str) -> anyhow::Result<Vec<(String, u64, u64)>> {
        let r = self.curl(who, "GET", &format!("dots-client={cuid}/acls/acl={acl}?content=all"), None)?;
        if r.status != 200 {
            bail!("GET acl {acl}: {} {}", r.status, r.body);
        }
        let v = r.json();
        let aces = v["ietf-dots-data-channel:acl"][0]["aces"]["ace"].as_array().cloned().unwrap_or_default();
        let num = |x: &Value| x.as_str().and_then(|s| s.parse().ok()).unwrap_or(0u64);
        Ok(aces
            .iter()
            .map(|a| (a["name"].as_str().unwrap_or("").to_string(), num(&a["statistics"]["matched-packets"]), num(&a["statistics"]["matched-octets"])))
            .collect())
    }

    /// matched-packets of one ACE.
    pub fn ace_packets(&self, who: &str, cuid: &str, acl: &str, ace: &str) -> anyhow::Result<u64> {
        Ok(self.ace_stats(who, cuid, acl)?.into_iter().find(|(n, _, _)| n == ace).map(|(_, p, _)| p).unwrap_or(0))
    }
}

/// An ACL body (`{"name":..}`) with one ACE per `(name, matches, actions)`.
pub fn acl(name: &str, activation: &str, aces: &[(&str, &str, &str)]) -> String {
    let aces: Vec<String> = aces
        .iter()
        .map(|(n, m, a)| format!(r#"{{"name":"{n}","matches":{m},"actions":{a}}}"#))
        .collect();
    format!(r#"{{"name":"{name}","activation-type":"{activation}","aces":{{"ace":[{}]}}}}"#, aces.join(","))
}

pub const DROP: &str = r#"{"forwarding":"drop"}"#;
pub const ACCEPT: &str = r#"{"forwarding":"accept"}"#;
