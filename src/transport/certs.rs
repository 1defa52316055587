//! OpenSSH certificates: the user certificate palisade logs in with, and the
//! host certificates that a `@cert-authority` line of known_hosts vouches
//! for (PROTOCOL.certkeys).
//!
//! Everything here is a pure check of a certificate against a time, a key
//! and a host name, so that the rules are tested without a network; the
//! handshake only asks these functions.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh::keys::agent::AgentIdentity;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Algorithm, Certificate, HashAlg, PrivateKey, PublicKey};

use super::known_hosts::describe;

/// Seconds since the epoch, as certificates count time.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A certificate time as people read it.
fn when(secs: u64) -> String {
    match UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        Some(t) => format!("{} UTC", crate::timing::utc(t)),
        None => "the end of time".to_owned(),
    }
}

/// Why `now` is outside the certificate's validity window (`valid after <=
/// now < valid before`), if it is.
pub(crate) fn outside_window(cert: &Certificate, now: u64) -> Option<String> {
    if now < cert.valid_after() {
        Some(format!("not valid before {}", when(cert.valid_after())))
    } else if now >= cert.valid_before() {
        Some(format!("expired at {}", when(cert.valid_before())))
    } else {
        None
    }
}

/// How `-v` and errors name a certificate: its key id, serial and CA.
pub(crate) fn label(cert: &Certificate) -> String {
    format!(
        "certificate {:?} (serial {}, signed by CA {})",
        crate::text::shorten(cert.key_id(), 60),
        cert.serial(),
        cert.signature_key().fingerprint(HashAlg::Sha256)
    )
}

/// Reads the user certificate at `path` for `key` and checks, before any
/// node is contacted, what palisade can know locally: that it is a user
/// certificate, for this very key, and valid now. Whether a node's
/// `TrustedUserCAKeys` trusts its CA and its principals name the user, only
/// the node knows.
pub(crate) fn load_user_certificate(path: &Path, key: &PublicKey, now: u64) -> Result<Certificate, String> {
    let shown = path.display();
    let bytes = crate::input::read(path, 64 << 10).map_err(|e| match e {
        crate::input::ReadError::Io(e) => format!("{shown}: cannot read the certificate: {e}"),
        e => format!("{shown}: {e}"),
    })?;
    let text = crate::input::text(&bytes).map_err(|e| format!("{shown}: {e}"))?;
    let cert = Certificate::from_openssh(text.trim())
        .map_err(|e| format!("{shown}: not an OpenSSH certificate: {e}"))?;
    check_user_certificate(&cert, key, now).map_err(|why| format!("{shown}: {why}"))?;
    Ok(cert)
}

/// The checks of [`load_user_certificate`] on a certificate in hand.
pub(crate) fn check_user_certificate(cert: &Certificate, key: &PublicKey, now: u64) -> Result<(), String> {
    if cert.cert_type() != CertType::User {
        return Err("a host certificate, not a user certificate".to_owned());
    }
    if cert.public_key() != key.key_data() {
        return Err(format!(
            "the certificate is for another key ({}), not {}",
            describe(&PublicKey::new(cert.public_key().clone(), "")),
            describe(key)
        ));
    }
    if let Some(why) = outside_window(cert, now) {
        return Err(format!("the {} is {why}", label(cert)));
    }
    Ok(())
}

/// Why a host certificate does not vouch for `host` (the name or address
/// palisade connects to, as the certificate's principals must name it), or
/// `Ok` when it does: a host certificate, valid `now`, naming `host`, with
/// no critical option (OpenSSH knows none for hosts), signed by `ca`. The
/// caller has found `ca` among the `@cert-authority` lines for the host and
/// checked the `@revoked` ones.
pub(crate) fn check_host_certificate(
    cert: &Certificate,
    ca: &PublicKey,
    host: &str,
    now: u64,
) -> Result<(), String> {
    if cert.cert_type() != CertType::Host {
        return Err("it is a user certificate, not a host certificate".to_owned());
    }
    if let Some(why) = outside_window(cert, now) {
        return Err(format!("it is {why}"));
    }
    // OpenSSH accepts a host certificate with no principals for any host;
    // palisade does not: a certificate that names no host would let any
    // machine holding one stand in for every node.
    if cert.valid_principals().is_empty() {
        return Err("it names no principals (sign it with -n and the host's address)".to_owned());
    }
    if !cert.valid_principals().iter().any(|p| p == host) {
        let mut named: Vec<String> = cert
            .valid_principals()
            .iter()
            .take(5)
            .map(|p| format!("{:?}", crate::text::shorten(p, 60)))
            .collect();
        if cert.valid_principals().len() > 5 {
            named.push("…".to_owned());
        }
        return Err(format!(
            "its principals ({}) do not include {host}",
            named.join(", ")
        ));
    }
    if !cert.critical_options().is_empty() {
        return Err("it carries critical options, which no host certificate has".to_owned());
    }
    let fingerprint = ca.fingerprint(HashAlg::Sha256);
    cert.validate_at(now, [&fingerprint])
        .map_err(|_| "its signature does not verify with the CA key".to_owned())
}

/// The host certificate algorithms to ask a server for, when a CA may
/// vouch for it: every kind of key palisade accepts, RSA with SHA-2 only.
pub(crate) fn host_certificate_algorithms() -> Vec<Algorithm> {
    use russh::keys::EcdsaCurve;
    vec![
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
    ]
}

/// Signs a certificate login with a key in memory, for RSA: the SSH
/// library's own certificate login names the algorithm `ssh-rsa-cert-v01`
/// (SHA-1), which OpenSSH 8.8 and later refuse, while its signer path names
/// `rsa-sha2-*-cert-v01` and signs with that hash.
pub(super) struct KeySigner(pub Arc<PrivateKey>);

impl russh::Signer for KeySigner {
    type Error = russh::AgentAuthError;

    #[allow(clippy::manual_async_fn)]
    fn auth_sign(
        &mut self,
        _identity: &AgentIdentity,
        hash: Option<HashAlg>,
        mut to_sign: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send {
        let key = self.0.clone();
        async move {
            use russh::keys::signature::Signer;
            use russh::keys::ssh_encoding::Encode;
            use russh::keys::ssh_key::private::KeypairData;
            let signature = match key.key_data() {
                KeypairData::Rsa(pair) => (pair, hash).try_sign(&to_sign),
                _ => key.as_ref().try_sign(&to_sign),
            }
            .map_err(|e| russh::keys::Error::from(russh::keys::ssh_key::Error::from(e)))?;
            let blob = signature
                .encode_vec()
                .map_err(|e| russh::keys::Error::from(russh::keys::ssh_key::Error::from(e)))?;
            blob.as_slice()
                .encode(&mut to_sign)
                .map_err(russh::keys::Error::from)?;
            Ok(to_sign)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    const NOW: u64 = 1_800_000_000;

    /// A distinct key per `seed`: tests need no randomness.
    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn cert(
        ca: &PrivateKey,
        subject: &PublicKey,
        kind: CertType,
        principals: &[&str],
        window: (u64, u64),
    ) -> Certificate {
        let mut b = Builder::new([7u8; 32], subject.key_data().clone(), window.0, window.1).unwrap();
        b.cert_type(kind).unwrap().key_id("lab").unwrap();
        for p in principals {
            b.valid_principal(*p).unwrap();
        }
        if principals.is_empty() {
            b.all_principals_valid().unwrap();
        }
        b.sign(ca).unwrap()
    }

    #[test]
    fn a_user_certificate_must_be_for_the_key_and_valid_now() {
        let (ca, mine, other) = (key(1), key(2), key(3));
        let good = cert(
            &ca,
            mine.public_key(),
            CertType::User,
            &["core"],
            (NOW - 60, NOW + 60),
        );
        assert_eq!(check_user_certificate(&good, mine.public_key(), NOW), Ok(()));
        let e = check_user_certificate(&good, other.public_key(), NOW).unwrap_err();
        assert!(e.contains("for another key"), "{e}");
        let e = check_user_certificate(&good, mine.public_key(), NOW + 60).unwrap_err();
        assert!(e.contains("expired at 2027-01-15T08:01:00 UTC"), "{e}");
        let e = check_user_certificate(&good, mine.public_key(), NOW - 61).unwrap_err();
        assert!(e.contains("not valid before"), "{e}");
        let host = cert(&ca, mine.public_key(), CertType::Host, &["core"], (0, u64::MAX));
        let e = check_user_certificate(&host, mine.public_key(), NOW).unwrap_err();
        assert!(e.contains("not a user certificate"), "{e}");
    }

    #[test]
    fn a_host_certificate_needs_its_ca_type_window_and_principal() {
        let (ca, other_ca, host_key) = (key(1), key(2), key(3));
        let window = (NOW - 60, NOW + 60);
        let good = cert(
            &ca,
            host_key.public_key(),
            CertType::Host,
            &["198.18.1.11"],
            window,
        );
        let ca_pub = ca.public_key();
        assert_eq!(check_host_certificate(&good, ca_pub, "198.18.1.11", NOW), Ok(()));
        let e = check_host_certificate(&good, ca_pub, "198.18.1.12", NOW).unwrap_err();
        assert!(
            e.contains("principals (\"198.18.1.11\") do not include 198.18.1.12"),
            "{e}"
        );
        // The principal is the host as it is named, without a port.
        let e = check_host_certificate(&good, ca_pub, "[198.18.1.11]:2222", NOW).unwrap_err();
        assert!(e.contains("do not include"), "{e}");
        let e = check_host_certificate(&good, ca_pub, "198.18.1.11", NOW + 60).unwrap_err();
        assert!(e.contains("expired"), "{e}");
        let e = check_host_certificate(&good, ca_pub, "198.18.1.11", NOW - 61).unwrap_err();
        assert!(e.contains("not valid before"), "{e}");
        let e = check_host_certificate(&good, other_ca.public_key(), "198.18.1.11", NOW).unwrap_err();
        assert!(e.contains("signature"), "{e}");
        let user = cert(
            &ca,
            host_key.public_key(),
            CertType::User,
            &["198.18.1.11"],
            window,
        );
        let e = check_host_certificate(&user, ca_pub, "198.18.1.11", NOW).unwrap_err();
        assert!(e.contains("not a host certificate"), "{e}");
        let anyone = cert(&ca, host_key.public_key(), CertType::Host, &[], window);
        let e = check_host_certificate(&anyone, ca_pub, "198.18.1.11", NOW).unwrap_err();
        assert!(e.contains("no principals"), "{e}");
    }

    #[test]
    fn certificate_algorithms_are_sha2_only() {
        let names: Vec<String> = host_certificate_algorithms()
            .iter()
            .map(Algorithm::to_certificate_type)
            .collect();
        assert!(
            names.contains(&"ssh-ed25519-cert-v01@openssh.com".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"rsa-sha2-512-cert-v01@openssh.com".to_owned()),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.starts_with("ssh-rsa")), "{names:?}");
    }
}
