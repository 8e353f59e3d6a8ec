//! A local stand-in for a provider's send API that prints every message Assent sends.
//! `cargo run -p assent-local --example graph_sandbox -- [ADDR] [PROVIDER]`, PROVIDER one
//! of whatsapp (the default), telegram, messenger, twilio; then start assent-local with
//! that channel's `*_API_BASE=http://ADDR` (docs/channels.md, "Trying a channel locally").

use assent::channels::sandbox::ApiSandbox;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:3900".into())
        .parse()?;
    let provider = args.next().unwrap_or_else(|| "whatsapp".into());
    let sandbox = match provider.as_str() {
        "whatsapp" => ApiSandbox::graph(addr).await?,
        "telegram" => ApiSandbox::telegram(addr).await?,
        "messenger" => ApiSandbox::messenger(addr).await?,
        "twilio" => ApiSandbox::twilio(addr).await?,
        other => return Err(format!("unknown provider `{other}`").into()),
    };
    sandbox.print_messages();
    println!(
        "{provider} API sandbox on {}: messages Assent sends appear here",
        sandbox.base_url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
