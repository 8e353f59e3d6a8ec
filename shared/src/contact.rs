//! Who a contact is and where to reach them. Channel-neutral: the engine copies an
//! [`Address`] from an inbound message to the messages it sends back, nothing more.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A contact's identity: `{channel}:{provider user id}`, e.g. `whatsapp:15551234567`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactId(String);

impl ContactId {
    pub fn new(channel: &str, user_id: &str) -> Self {
        ContactId(format!("{channel}:{user_id}"))
    }

    /// Rebuilds an id read back from storage.
    pub fn from_stored(raw: impl Into<String>) -> Self {
        ContactId(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The channel and the provider's user id the id was made of ([`ContactId::new`]).
    pub fn parts(&self) -> Option<(&str, &str)> {
        self.0.split_once(':')
    }

    /// A pseudonym for logs: stable per contact, but not the phone number itself.
    pub fn log_ref(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        format!("c_{}", hex::encode(&digest[..6]))
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a contact is reached: the channel, their id there, and the business-side
/// endpoint they wrote to (`via`: WhatsApp's phone_number_id), which the reply must use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub channel: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl Address {
    pub fn contact_id(&self) -> ContactId {
        ContactId::new(&self.channel, &self.user_id)
    }
}
