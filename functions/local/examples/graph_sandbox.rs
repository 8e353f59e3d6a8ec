//! A local stand-in for the WhatsApp Graph API that prints every message Assent sends.
//! `cargo run -p assent-local --example graph_sandbox -- 127.0.0.1:3900`, then start
//! assent-local with `WHATSAPP_API_BASE=http://127.0.0.1:3900`.

use assent::channels::whatsapp::sandbox::GraphSandbox;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3900".into());
    let sandbox = GraphSandbox::graph(addr.parse()?).await?;
    sandbox.print_messages();
    println!(
        "Graph API sandbox on {}: messages Assent sends appear here",
        sandbox.base_url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
