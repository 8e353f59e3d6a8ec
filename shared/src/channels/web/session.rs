//! Visitor sessions: the server issues `"{visitor}.{mac}"`, where the MAC (HMAC-SHA256
//! with a server key) proves the server issued that visitor id. Nothing is stored per
//! session, so any number of visitors cost nothing until they write.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

/// The key that signs session tokens.
#[derive(Clone)]
pub struct SessionKey(Vec<u8>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    pub fn new(secret: &[u8]) -> SessionKey {
        SessionKey(secret.to_vec())
    }

    /// Reads the key kept in `path`, or makes one and keeps it there (readable by the
    /// owner only), so that sessions outlive a restart.
    pub fn load_or_create(path: &Path) -> std::io::Result<SessionKey> {
        if let Ok(existing) = std::fs::read(path) {
            if existing.len() >= 32 {
                return Ok(SessionKey(existing));
            }
        }
        let key = random_bytes::<32>()?.to_vec();
        write_private(path, &key)?;
        Ok(SessionKey(key))
    }

    /// A new visitor and the token that names it.
    pub fn issue(&self) -> std::io::Result<(String, String)> {
        let visitor = hex::encode(random_bytes::<16>()?);
        let token = format!("{visitor}.{}", self.mac(&visitor));
        Ok((visitor, token))
    }

    /// The visitor a token names, if this key issued it.
    pub fn verify(&self, token: &str) -> Option<String> {
        let (visitor, mac) = token.split_once('.')?;
        let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let mut expected = self.hmac();
        expected.update(visitor.as_bytes());
        // verify_slice compares in constant time.
        expected.verify_slice(&given).ok()?;
        Some(visitor.to_string())
    }

    fn mac(&self, visitor: &str) -> String {
        let mut mac = self.hmac();
        mac.update(visitor.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    fn hmac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_visitor_only_under_the_key_that_issued_it() {
        let key = SessionKey::new(b"k1");
        let (visitor, token) = key.issue().unwrap();
        assert_eq!(key.verify(&token), Some(visitor.clone()));
        assert_eq!(SessionKey::new(b"k2").verify(&token), None);
        let forged = format!("{}.{}", "0".repeat(32), token.split_once('.').unwrap().1);
        assert_eq!(key.verify(&forged), None);
        assert_eq!(key.verify("no-dot"), None);
        assert_ne!(key.issue().unwrap().0, visitor);
    }

    #[test]
    fn the_kept_key_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web-session.key");
        let (_, token) = SessionKey::load_or_create(&path).unwrap().issue().unwrap();
        assert!(
            SessionKey::load_or_create(&path)
                .unwrap()
                .verify(&token)
                .is_some()
        );
    }
}
