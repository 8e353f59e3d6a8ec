//! Channel limits a definition must fit at publish time, so that a question never fails
//! at send time. The strictest channel wins: a workflow runs on every channel.

/// WhatsApp reply buttons and Messenger/Instagram quick replies allow 20 characters per label.
pub const OPTION_LABEL_MAX_CHARS: usize = 20;
/// WhatsApp list messages hold 10 rows; more options than that cannot be offered.
pub const OPTIONS_MAX: usize = 10;
/// Telegram callback_data is at most 64 bytes; option ids travel there.
pub const OPTION_ID_MAX_BYTES: usize = 64;
/// Instagram allows 1000 bytes of UTF-8 per text (Messenger 2000 characters, SMS 1600,
/// WhatsApp 1024 for a question and 4096 for text, Telegram 4096): messages and questions.
pub const TEXT_MAX_BYTES: usize = 1000;
/// A contact field value is stored, not sent.
pub const FIELD_VALUE_MAX_CHARS: usize = 4096;
/// Step ids appear in logs, schedule inputs and reports: keep them short and plain.
pub const STEP_ID_MAX_CHARS: usize = 64;
/// A question waits at least this long: shorter timeouts race the channel itself.
pub const TIMEOUT_MIN_SECONDS: u64 = 1;
/// And at most a week: WhatsApp's customer-service window is 24 hours anyway.
pub const TIMEOUT_MAX_SECONDS: u64 = 7 * 24 * 3600;
/// A jump is followed at most this many times per run.
pub const MAX_JUMPS_LIMIT: u32 = 100;

/// The ids of workflows and steps, and the names of contact fields: plain, and at most
/// [`STEP_ID_MAX_CHARS`] long.
pub fn is_short_plain_id(id: &str) -> bool {
    is_plain_id(id) && id.len() <= STEP_ID_MAX_CHARS
}

/// Ids are `[A-Za-z0-9_-]`, so they are safe in every channel payload and log line.
pub fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
/// A definition holds at most this many steps.
pub const STEPS_MAX: usize = 500;
/// And at most this much JSON: a DynamoDB item holds 400 KB, and each published version
/// and each draft is one item. 500 steps of 1,000-byte texts would be about 1 MB.
pub const DEFINITION_MAX_BYTES: usize = 256 * 1024;
