//! `assent-local`: webhooks, steps and timers in one process over the embedded store.

use clap::Parser;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use assent::channels::web::{SessionKey, WebChat};
use assent::channels::{self, Channels, Purpose};
use assent::clock::SystemClock;
use assent::local::LocalApp;
use assent::runtime::RuntimeConfig;
use assent::workflow::Workflow;
use assent::workflow::template::{self, TemplateError};

/// glibc's allocator spent about a quarter of a busy server's time in malloc and free,
/// contended between the async workers and the store's writer thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "assent-local",
    version,
    about = "Assent on one machine: consent-first conversations over an embedded store"
)]
struct Args {
    /// Address to serve webhooks on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Where the store file lives.
    #[arg(long, default_value = ".assent")]
    data_dir: PathBuf,
    /// Built-in template to run.
    #[arg(long, default_value = template::REQUEST_CONSENT_PRIVACY)]
    template: String,
    /// A workflow definition file (JSON) to run instead of a template.
    #[arg(long, conflicts_with_all = ["set", "template"])]
    workflow: Option<PathBuf>,
    /// Template parameter, e.g. --set policy_url=https://example.com/privacy (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
    set: Vec<(String, String)>,
    /// Serve channels whose secrets are missing, without checking signatures. Never in production.
    #[arg(long)]
    insecure_dev: bool,
    /// Do not serve the website chat (its demo page, widget, sessions and webhook).
    #[arg(long)]
    no_web_chat: bool,
}

fn key_value(arg: &str) -> Result<(String, String), String> {
    arg.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| "expected KEY=VALUE".to_string())
}

fn load_workflow(args: &Args) -> Result<Workflow, String> {
    match &args.workflow {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Workflow::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        None => {
            let params: BTreeMap<String, String> = args.set.iter().cloned().collect();
            template::build(&args.template, &params).map_err(|e| match e {
                // These name the template already.
                TemplateError::UnknownTemplate(_) | TemplateError::UnknownParam { .. } => {
                    e.to_string()
                }
                e => format!("template `{}`: {e}", args.template),
            })
        }
    }
}

/// The provider channels whose variables are set, and the web chat unless it is off.
fn channels(args: &Args) -> Result<(Channels, Option<Arc<WebChat>>), String> {
    let var = |name: &str| std::env::var(name).ok();
    let configured = channels::from_env(&var, Purpose::Both, args.insecure_dev);
    configured
        .notices
        .iter()
        .for_each(|n| tracing::warn!("{n}"));
    if !configured.unconfigured.is_empty() {
        tracing::info!(channels = ?configured.unconfigured, "not configured (docs/channels.md)");
    }
    let channels = configured.channels;
    if args.no_web_chat {
        return Ok((channels, None));
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("data directory {}: {e}", args.data_dir.display()))?;
    let key = match var("WEB_SESSION_SECRET").filter(|s| !s.trim().is_empty()) {
        Some(secret) => SessionKey::new(secret.as_bytes()),
        None => SessionKey::load_or_create(&args.data_dir.join(WEB_SESSION_KEY_FILE))
            .map_err(|e| format!("web chat session key: {e}"))?,
    };
    let web = Arc::new(WebChat::from_env(&var, key)?);
    Ok((channels.with(web.clone()), Some(web)))
}

/// Where the web chat's session key is kept when WEB_SESSION_SECRET is not set.
const WEB_SESSION_KEY_FILE: &str = "web-session.key";

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: finishing requests in flight and draining the queue");
}

async fn run(args: Args) -> Result<(), String> {
    let workflow = load_workflow(&args)?;
    let (channels, web) = channels(&args)?;
    let served: Vec<&str> = channels.names().collect();
    if served.is_empty() {
        tracing::warn!("no channel is served: see the configuration table in the README");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", args.listen))?;
    let clock = Arc::new(SystemClock);
    let (mut app, published) = LocalApp::open(
        &args.data_dir,
        channels.clone(),
        clock,
        RuntimeConfig::default(),
        &workflow,
    )
    .await
    .map_err(|e| e.to_string())?;
    if let Some(web) = web {
        app = app.with_web_chat(web);
    }
    match std::env::var("ASSENT_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        Some(token) => app = app.with_admin(token),
        None => tracing::warn!("admin API off: set ASSENT_ADMIN_TOKEN to serve /admin"),
    }
    tracing::info!(
        listen = %args.listen, data_dir = %args.data_dir.display(), workflow = %published.id,
        version = published.version, channels = ?served, pending_timers = app.pending_timers(),
        "assent-local ready"
    );
    app.serve(listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // Before the runtime starts its threads and most memory is first touched.
    let small_pages = assent::local::disable_transparent_huge_pages();
    serve(small_pages)
}

#[tokio::main]
async fn serve(small_pages: std::io::Result<()>) -> ExitCode {
    let args = Args::parse();
    assent::logging::init(true);
    if let Err(e) = small_pages {
        tracing::info!(error = %e, "transparent huge pages stay on: latency under load suffers");
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("assent-local: {e}");
            ExitCode::FAILURE
        }
    }
}
