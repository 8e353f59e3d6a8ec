//! JSON log lines, one per event, for every host.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// The variable that filters logs.
pub const FILTER_VAR: &str = "ASSENT_LOG";

/// Installs the JSON logger. `ASSENT_LOG` filters, e.g. `info` or `assent=debug,info`
/// (default `info`). `timestamps: false` where the platform stamps each line (CloudWatch).
pub fn init(timestamps: bool) {
    let filter = std::env::var(FILTER_VAR)
        .ok()
        .and_then(|f| f.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(Level::INFO));
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false);
    let registry = tracing_subscriber::registry().with(filter);
    if timestamps {
        registry.with(layer).init();
    } else {
        registry.with(layer.without_time()).init();
    }
}
