//! `X-Twilio-Signature`: base64 of HMAC-SHA1, keyed with the auth token, over the public
//! webhook URL followed by every POST parameter's name and value, sorted by name.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::channels::InboundError;

pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The signature Twilio sends for a POST of `params` to `url`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

pub fn check(
    auth_token: &str,
    url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), InboundError> {
    let given = headers
        .get(SIGNATURE_HEADER)
        .ok_or(InboundError::Unauthorized("missing X-Twilio-Signature"))?;
    let given = STANDARD
        .decode(given.as_bytes())
        .map_err(|_| InboundError::Unauthorized("malformed X-Twilio-Signature"))?;
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| InboundError::Malformed("not a form-encoded body".into()))?;
    // verify_slice compares in constant time.
    mac(auth_token, url, &params)
        .verify_slice(&given)
        .map_err(|_| InboundError::Unauthorized("signature does not match"))
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The example from Twilio's security documentation.
    #[test]
    fn matches_twilios_documented_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            sign(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn accepts_its_own_signature_and_nothing_else() {
        let url = "https://assent.example/webhooks/twilio";
        let params = pairs(&[("Body", "Olá 😀 1"), ("From", "+4915112345678")]);
        let body = serde_urlencoded::to_string(&params).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, sign("tok", url, &params).parse().unwrap());
        assert_eq!(check("tok", url, &headers, body.as_bytes()), Ok(()));
        assert!(check("other", url, &headers, body.as_bytes()).is_err());
        assert!(check("tok", "https://elsewhere/", &headers, body.as_bytes()).is_err());
        let tampered = body.replace("1", "2");
        assert!(check("tok", url, &headers, tampered.as_bytes()).is_err());
        assert!(check("tok", url, &HeaderMap::new(), body.as_bytes()).is_err());
    }
}
