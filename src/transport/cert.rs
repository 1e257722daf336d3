//! The certificate HTTPS is served with: the user's own (`--tls-cert`, `--tls-key`), or a
//! self-signed one made on first start for this machine's names and addresses and kept next to
//! the state file, so a browser asks to "proceed" once, not at every restart.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Days a generated certificate is valid: Apple's devices trust no server certificate valid
/// for more than 825 days, even one the user installed.
const VALID_DAYS: u32 = 800;
/// A generated certificate this old is replaced at start (before it expires).
const RENEW_AFTER_DAYS: u64 = 770;

/// A certificate and its private key, PEM and DER.
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Identity {
    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).expect("checked when made or loaded")
    }

    fn key_der(&self) -> Result<PrivateKeyDer<'static>, String> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| format!("private key: {e}"))
    }

    /// SHA-256 of the certificate, as browsers show it (`AB:CD:…`).
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.cert_der().as_ref());
        digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    }
}

/// A self-signed certificate for `names` (DNS) and `addresses`.
pub fn generate(names: &[String], addresses: &[IpAddr]) -> Result<Identity, String> {
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| format!("certificate names: {e}"))?;
    for a in addresses {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(*a));
    }
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, format!("pieyes on {}", names.first().map_or("this machine", |n| n)));
    params.distinguished_name = dn;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    // rcgen's dates are `time`'s, which add std durations: now, from the epoch.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let day = std::time::Duration::from_secs(86_400);
    params.not_before = now - day; // a phone whose clock is a little behind still accepts it
    params.not_after = now + day * VALID_DAYS;
    let key = rcgen::KeyPair::generate().map_err(|e| format!("key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("certificate: {e}"))?;
    Ok(Identity { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// The server side of TLS 1.2 and 1.3 with `ring`, for this identity; browsers are offered
/// HTTP/1.1 (the WebSockets need it).
pub fn server_config(id: &Identity) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![id.cert_der()], id.key_der()?)
        .map_err(|e| format!("certificate and key: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The user's own certificate and key (PEM files).
pub fn load(cert: &Path, key: &Path) -> Result<Identity, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let id = Identity { cert_pem: read(cert)?, key_pem: read(key)? };
    CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).map_err(|e| format!("{}: {e}", cert.display()))?;
    id.key_der().map_err(|e| format!("{}: {e}", key.display()))?;
    Ok(id)
}

/// Where the generated certificate and key live: next to the state file.
pub fn paths_beside(state: &Path) -> (PathBuf, PathBuf) {
    let dir = match state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (dir.join("tls-cert.pem"), dir.join("tls-key.pem"))
}

/// Whether the generated certificate is made now, or was kept from an earlier start.
#[derive(Debug, PartialEq, Eq)]
pub enum Origin {
    Made,
    Kept,
    /// Made anew: the kept one was old, or unreadable (the reason).
    Renewed(String),
}

/// The certificate kept beside the state, or a new one (written atomically, key mode 0600).
pub fn load_or_make(state: &Path, names: &[String], addresses: &[IpAddr]) -> Result<(Identity, Origin), String> {
    let (cert, key) = paths_beside(state);
    let origin = if cert.exists() || key.exists() {
        let age_days = std::fs::metadata(&cert)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map_or(0, |d| d.as_secs() / 86_400);
        match load(&cert, &key) {
            Ok(id) if age_days < RENEW_AFTER_DAYS => return Ok((id, Origin::Kept)),
            Ok(_) => Origin::Renewed(format!("{age_days} days old")),
            Err(e) => Origin::Renewed(e),
        }
    } else {
        Origin::Made
    };
    let id = generate(names, addresses)?;
    let save = |p: &Path, text: &str, mode| {
        crate::control::state_file::save_atomic_mode(p, text, mode).map_err(|e| format!("{}: {e}", p.display()))
    };
    save(&key, &id.key_pem, 0o600)?;
    save(&cert, &id.cert_pem, 0o644)?;
    Ok((id, origin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_then_kept_with_a_private_key() {
        let dir = std::env::temp_dir().join(format!("pieyes-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = dir.join("state.conf");
        let names = vec!["robot".to_string(), "robot.local".to_string(), "localhost".to_string()];
        let addrs: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "192.168.1.9".parse().unwrap()];
        let (a, origin) = load_or_make(&state, &names, &addrs).unwrap();
        assert_eq!(origin, Origin::Made);
        let (b, origin) = load_or_make(&state, &names, &addrs).unwrap();
        assert_eq!(origin, Origin::Kept);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 32 * 3 - 1);
        let (cert, key) = paths_beside(&state);
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&cert).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(&b).unwrap();
        // A damaged file is replaced, and says why.
        std::fs::write(&key, "not a key").unwrap();
        let (c, origin) = load_or_make(&state, &names, &addrs).unwrap();
        assert!(matches!(origin, Origin::Renewed(_)), "{origin:?}");
        assert_ne!(c.fingerprint(), a.fingerprint());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_or_bad_file_is_a_clear_error() {
        let e = load(Path::new("/nonexistent/c.pem"), Path::new("/nonexistent/k.pem")).err().unwrap();
        assert!(e.starts_with("/nonexistent/c.pem:"), "{e}");
    }
}
