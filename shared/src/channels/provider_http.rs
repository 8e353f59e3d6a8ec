//! What every provider client does with HTTP: one client setup, Retry-After, and errors
//! that never quote a URL (Telegram puts the bot token in it).

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;
use std::time::Duration;

use crate::ports::SendError;

/// A provider that does not answer in this long is treated as unreachable (retried).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Redirects are not followed. A provider's send API never redirects a send; one that
/// does points at a wrong API base (http for https, say), and following it would turn the
/// POST into a GET without the message, or carry the token somewhere else.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A provider's answer: its status, its `Retry-After`, and its JSON body (`Null` if it
/// has none).
pub async fn read(response: reqwest::Response) -> (StatusCode, Option<Duration>, Value) {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// `Retry-After` in seconds, when the provider sent one.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
}

/// The request did not get an answer (connection refused, timeout): try again later.
pub fn unreachable(provider: &str, e: &reqwest::Error) -> SendError {
    SendError::Retryable {
        reason: format!("{provider} unreachable: {}", without_url(e)),
        retry_after: None,
    }
}

/// Throttling and the provider's own trouble pass, and so does a redirect: the API base
/// is set wrong, and the messages wait until it is fixed. Everything else is about the
/// request.
pub fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || status.is_redirection()
}

/// `Retryable` or `Permanent` with `reason`.
pub fn verdict(retryable: bool, reason: String, retry_after: Option<Duration>) -> SendError {
    if retryable {
        SendError::Retryable {
            reason,
            retry_after,
        }
    } else {
        SendError::Permanent { reason }
    }
}

/// reqwest errors print the URL, which for some APIs carries a token: leave it out.
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(at) = e.find(" for url") {
        e.truncate(at);
    }
    e
}
