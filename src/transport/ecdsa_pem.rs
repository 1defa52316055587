//! A way round a limit of the SSH library: it refuses an OpenSSH-format
//! ECDSA key whose private number starts with a zero byte (the format
//! stores it as an mpint, which drops that byte, and the library wants the
//! full width): about 1 ECDSA key in 256 that `ssh-keygen -t ecdsa` makes.
//! The same key written as SEC1 PEM (what `ssh-keygen -p -m PEM` writes)
//! loads, so an unencrypted key of that kind is rewritten to it in memory,
//! padding the number back to its width. An encrypted one cannot be read
//! without its cipher; the caller then says how to convert it.

use data_encoding::BASE64;

/// The key as SEC1 PEM text, when `text` is an unencrypted OpenSSH-format
/// ECDSA key; `None` for anything else.
pub(super) fn as_sec1_pem(text: &str) -> Option<String> {
    let body: String = text
        .trim()
        .strip_prefix("-----BEGIN OPENSSH PRIVATE KEY-----")?
        .strip_suffix("-----END OPENSSH PRIVATE KEY-----")?
        .split_whitespace()
        .collect();
    let bytes = BASE64.decode(body.as_bytes()).ok()?;
    let mut r = Reader(bytes.strip_prefix(b"openssh-key-v1\0")?);
    let (cipher, kdf) = (r.string()?, r.string()?);
    if cipher != b"none" || kdf != b"none" {
        return None;
    }
    r.string()?; // kdf options
    if r.u32()? != 1 {
        return None;
    }
    r.string()?; // the public key
    let mut private = Reader(r.string()?);
    if private.u32()? != private.u32()? {
        return None;
    }
    let (width, oid): (usize, &[u8]) = match private.string()? {
        b"ecdsa-sha2-nistp256" => (32, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
        b"ecdsa-sha2-nistp384" => (48, &[0x2b, 0x81, 0x04, 0x00, 0x22]),
        b"ecdsa-sha2-nistp521" => (66, &[0x2b, 0x81, 0x04, 0x00, 0x23]),
        _ => return None,
    };
    private.string()?; // the curve's name
    let point = private.string()?;
    let scalar = private.string()?; // an mpint: big-endian, minimal
    let scalar = scalar.strip_prefix(&[0]).unwrap_or(scalar);
    if scalar.len() > width {
        return None;
    }
    let mut padded = vec![0u8; width - scalar.len()];
    padded.extend_from_slice(scalar);
    // RFC 5915: ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET
    // STRING, [0] parameters (the curve's OID), [1] publicKey BIT STRING }.
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(point);
    let der = tlv(
        0x30,
        &[
            tlv(0x02, &[1]),
            tlv(0x04, &padded),
            tlv(0xa0, &tlv(0x06, oid)),
            tlv(0xa1, &tlv(0x03, &bit_string)),
        ]
        .concat(),
    );
    let encoded = BASE64.encode(&der);
    let mut pem = String::from("-----BEGIN EC PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).ok()?);
        pem.push('\n');
    }
    pem.push_str("-----END EC PRIVATE KEY-----\n");
    Some(pem)
}

/// A DER tag, length and value.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(value);
    out
}

/// The SSH wire format's reads (RFC 4251 §5), each `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > self.0.len() {
            return None;
        }
        let (value, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes ECDSA keys with ssh-keygen until one has a private number
    /// starting with a zero byte (1 in 256), and checks that it loads, as
    /// the same key the SSH library reads from PEM.
    #[test]
    fn an_ecdsa_key_with_a_leading_zero_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ecdsa");
        for i in 0..4000 {
            let _ = std::fs::remove_file(&path);
            let made = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
                .arg(&path)
                .status();
            let Ok(made) = made else {
                panic!("ssh-keygen is needed for this test (openssh-client)");
            };
            assert!(made.success());
            let text = std::fs::read_to_string(&path).unwrap();
            if russh::keys::decode_secret_key(&text, None).is_ok() {
                if i >= 20 {
                    continue;
                }
                // A key that loads as it is comes out the same way.
                let pem = as_sec1_pem(&text).expect("an OpenSSH ECDSA key");
                let (a, b) = (
                    russh::keys::decode_secret_key(&text, None).unwrap(),
                    russh::keys::decode_secret_key(&pem, None).unwrap(),
                );
                assert_eq!(a.public_key().key_data(), b.public_key().key_data());
                continue;
            }
            let pem = as_sec1_pem(&text).expect("an OpenSSH ECDSA key");
            let key = russh::keys::decode_secret_key(&pem, None).unwrap();
            let public = std::fs::read_to_string(dir.path().join("id_ecdsa.pub")).unwrap();
            let public =
                russh::keys::parse_public_key_base64(public.split_whitespace().nth(1).unwrap()).unwrap();
            assert_eq!(key.public_key().key_data(), public.key_data());
            return;
        }
        panic!("no key with a leading zero in 4000 tries (1 in 256 expected)");
    }

    #[test]
    fn anything_else_is_left_alone() {
        assert_eq!(as_sec1_pem("hello"), None);
        assert_eq!(
            as_sec1_pem("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"),
            None
        );
    }
}
