//! Development PKI for the DOTS signal channel: one CA, one server certificate, and
//! one certificate per DOTS client, all ECDSA P-256 (small handshakes matter over DTLS,
//! RFC 9132 section 7.3), written as PEM files that both mitigator and libcoap's
//! `coap-client-openssl` read.
//!
//! Not for production: the CA key sits on disk next to the certificates.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

/// What `create_dev_pki` wrote: the paths of every file.
#[derive(Debug, Clone)]
pub struct DevPki {
    pub ca_pem: PathBuf,
    pub ca_key_pem: PathBuf,
    pub server_pem: PathBuf,
    pub server_key_pem: PathBuf,
    /// (client name, certificate path, key path), in the order given.
    pub clients: Vec<(String, PathBuf, PathBuf)>,
}

/// Writes `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`, `<client>.pem` and
/// `<client>-key.pem` into `dir` (created if missing).
///
/// The server certificate names 127.0.0.1, ::1 and localhost besides `server_names`
/// (names that parse as IP addresses become IP SANs, the rest DNS SANs), so that a
/// client validating the server (RFC 9132 section 7.1: RFC 6125 checks) works on a
/// laptop without further setup.
pub fn create_dev_pki(dir: &Path, server_names: &[String], clients: &[String]) -> Result<DevPki> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in clients {
        check_file_stem(name)?;
    }
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let ca = ca_params().self_signed(&ca_key)?;

    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let server = server_params(server_names)?.signed_by(&server_key, &ca, &ca_key)?;

    let pki = DevPki {
        ca_pem: write(dir, "ca.pem", &ca.pem())?,
        ca_key_pem: write_secret(dir, "ca-key.pem", &ca_key.serialize_pem())?,
        server_pem: write(dir, "server.pem", &server.pem())?,
        server_key_pem: write_secret(dir, "server-key.pem", &server_key.serialize_pem())?,
        clients: clients
            .iter()
            .map(|name| write_client(dir, name, &ca, &ca_key))
            .collect::<Result<_>>()?,
    };
    tracing::info!(dir = %dir.display(), clients = clients.len(), "development PKI written");
    Ok(pki)
}

/// Issues more client certificates (and, with `server_names`, a new server
/// certificate) from the development CA already in `dir` (`ca.pem`,
/// `ca-key.pem`), so that a daemon's PKI can grow without replacing its CA.
///
/// The CA certificate is rebuilt from its key and the fixed CA parameters: same
/// subject and key identifier, so the new certificates chain to the `ca.pem` on disk.
pub fn add_to_dev_pki(dir: &Path, server_names: &[String], clients: &[String]) -> Result<DevPki> {
    for name in clients {
        check_file_stem(name)?;
    }
    let key_pem = fs::read_to_string(dir.join("ca-key.pem")).with_context(|| format!("reading {}/ca-key.pem", dir.display()))?;
    let ca_key = KeyPair::from_pem(&key_pem).context("parsing ca-key.pem")?;
    let ca = ca_params().self_signed(&ca_key)?;
    let (server_pem, server_key_pem) = if server_names.is_empty() {
        (dir.join("server.pem"), dir.join("server-key.pem"))
    } else {
        let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let server = server_params(server_names)?.signed_by(&server_key, &ca, &ca_key)?;
        (write(dir, "server.pem", &server.pem())?, write_secret(dir, "server-key.pem", &server_key.serialize_pem())?)
    };
    Ok(DevPki {
        ca_pem: dir.join("ca.pem"),
        ca_key_pem: dir.join("ca-key.pem"),
        server_pem,
        server_key_pem,
        clients: clients.iter().map(|name| write_client(dir, name, &ca, &ca_key)).collect::<Result<_>>()?,
    })
}

/// The SubjectPublicKeyInfo (DER) of the first certificate in `cert_pem`: the bytes a
/// DOTS server hashes into the client's cuid (RFC 9132 section 4.4.1).
pub fn spki_der_of(cert_pem: &[u8]) -> Result<Vec<u8>> {
    let cert = openssl::x509::X509::from_pem(cert_pem).context("parsing certificate PEM")?;
    spki_der_of_x509(&cert)
}

/// Same as [`spki_der_of`] for an already parsed certificate.
pub fn spki_der_of_x509(cert: &openssl::x509::X509Ref) -> Result<Vec<u8>> {
    Ok(cert.public_key()?.public_key_to_der()?)
}

/// The subject as `CN=...,O=...` (for logs and `PeerInfo`; identity is the SPKI).
pub fn subject_of_x509(cert: &openssl::x509::X509Ref) -> String {
    cert.subject_name()
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "mitigator development CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut p);
    p
}

fn server_params(server_names: &[String]) -> Result<CertificateParams> {
    let mut sans: BTreeSet<String> = ["127.0.0.1", "::1", "localhost"].map(String::from).into();
    sans.extend(server_names.iter().cloned());
    let mut p = CertificateParams::new(sans.into_iter().collect::<Vec<_>>())?;
    let cn = server_names.first().map(String::as_str).unwrap_or("localhost");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut p);
    Ok(p)
}

fn client_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // webpki (rustls) insists on clientAuth for client certificates.
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    set_validity(&mut p);
    p
}

fn write_client(
    dir: &Path,
    name: &str,
    ca: &Certificate,
    ca_key: &KeyPair,
) -> Result<(String, PathBuf, PathBuf)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = client_params(name).signed_by(&key, ca, ca_key)?;
    let cert_path = write(dir, &format!("{name}.pem"), &cert.pem())?;
    let key_path = write_secret(dir, &format!("{name}-key.pem"), &key.serialize_pem())?;
    Ok((name.to_string(), cert_path, key_path))
}

/// Fixed dates rather than "now": rcgen's default (1975..4096) trips some verifiers,
/// and a dev PKI that expires mid-demo is worse than one that lives long.
fn set_validity(p: &mut CertificateParams) {
    p.not_before = date_time_ymd(2024, 1, 1);
    p.not_after = date_time_ymd(2049, 12, 31);
}

/// Client names become file names: refuse anything that could escape `dir`.
fn check_file_stem(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.')
        && !matches!(name, "ca" | "ca-key" | "server" | "server-key");
    anyhow::ensure!(ok, "client name {name:?} is not usable as a file name");
    Ok(())
}

fn write(dir: &Path, file: &str, contents: &str) -> Result<PathBuf> {
    let path = dir.join(file);
    fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Private keys are readable by their owner only.
fn write_secret(dir: &Path, file: &str, contents: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = write(dir, file, contents)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::X509;

    /// A directory of its own per test: tests run in parallel threads.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mitigator-certs-unit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn writes_a_chain_that_verifies_with_the_expected_names() {
        let dir = scratch("writes_a_chain_that_verifies_with_the_expected_names");
        let pki = create_dev_pki(&dir, &["dots.example.net".into(), "192.0.2.7".into()], &["cpe1".into()]).unwrap();
        let ca = X509::from_pem(&fs::read(&pki.ca_pem).unwrap()).unwrap();
        let server = X509::from_pem(&fs::read(&pki.server_pem).unwrap()).unwrap();
        let client = X509::from_pem(&fs::read(dir.join("cpe1.pem")).unwrap()).unwrap();
        let ca_key = ca.public_key().unwrap();
        assert!(server.verify(&ca_key).unwrap() && client.verify(&ca_key).unwrap());
        assert!(!server.verify(&client.public_key().unwrap()).unwrap());

        let sans: Vec<String> = server
            .subject_alt_names()
            .unwrap()
            .iter()
            .map(|n| match (n.dnsname(), n.ipaddress()) {
                (Some(d), _) => d.to_string(),
                (_, Some(ip)) => format!("{ip:?}"),
                _ => String::new(),
            })
            .collect();
        for want in ["localhost", "dots.example.net", "[127, 0, 0, 1]", "[192, 0, 2, 7]"] {
            assert!(sans.iter().any(|s| s == want), "{want} missing from {sans:?}");
        }
        assert!(sans.iter().any(|s| s.starts_with("[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]")));
        assert_eq!(server.public_key().unwrap().ec_key().unwrap().group().curve_name(), Some(openssl::nid::Nid::X9_62_PRIME256V1));
        assert_eq!(subject_of_x509(&client), "CN=cpe1");
        let mode = fs::metadata(dir.join("cpe1-key.pem")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn spki_is_the_der_public_key_of_the_certificate() {
        let dir = scratch("spki_is_the_der_public_key_of_the_certificate").with_extension("spki");
        let pki = create_dev_pki(&dir, &[], &["c".into()]).unwrap();
        let spki = spki_der_of(&fs::read(&pki.clients[0].1).unwrap()).unwrap();
        let key = openssl::pkey::PKey::private_key_from_pem(&fs::read(&pki.clients[0].2).unwrap()).unwrap();
        assert_eq!(spki, key.public_key_to_der().unwrap());
        assert_eq!(spki.len(), 91, "P-256 SPKI is 91 bytes");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn added_clients_chain_to_the_existing_ca() {
        let dir = scratch("added_clients_chain_to_the_existing_ca").with_extension("add");
        let pki = create_dev_pki(&dir, &[], &["alice".into()]).unwrap();
        let more = add_to_dev_pki(&dir, &[], &["carol".into()]).unwrap();
        let ca = X509::from_pem(&fs::read(&pki.ca_pem).unwrap()).unwrap();
        let carol = X509::from_pem(&fs::read(&more.clients[0].1).unwrap()).unwrap();
        assert!(carol.verify(&ca.public_key().unwrap()).unwrap());
        assert_eq!(carol.issuer_name().to_der().unwrap(), ca.subject_name().to_der().unwrap());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn client_names_cannot_escape_the_directory() {
        let dir = scratch("client_names_cannot_escape_the_directory").with_extension("names");
        assert!(create_dev_pki(&dir, &[], &["../evil".into()]).is_err());
        assert!(create_dev_pki(&dir, &[], &["server".into()]).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
