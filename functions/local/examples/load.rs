//! Load bench: N conversations through the real `assent-local` over HTTP, with signed
//! WhatsApp webhooks and the Graph API sandbox, then the same request load against a bare
//! HTTP server (the floor). Method and numbers: docs/PERFORMANCE.md.
//!
//! cargo build --profile local -p assent-local --bins --examples &&
//! target/local/examples/load [conversations] [concurrency]     (default 10000 64)
//!
//! Each contact is a conversation of its own, at most `concurrency` at once: it says hello,
//! waits for its question, and taps AGREE & PROCEED, or (every tenth contact) stays silent
//! so that its timeout fires (timeout 5 s) alongside the others' flows and its lateness
//! can be measured. Throughput counts the accepted flows, from the first hello to the last
//! thanks: a silent conversation ends 5 s after its question however fast the server is.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

use assent::channels::whatsapp::sandbox::{self, GraphSandbox};

/// The load generator shares the machine with the server: the lighter it is, the more of
/// the two cores the server gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "load-secret";
const TIMEOUT_SECONDS: u64 = 5;

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn body(wa_id: &str, id: &str, message: serde_json::Value) -> Vec<u8> {
    sandbox::meta_json(&sandbox::message_webhook(
        "106540352242922",
        wa_id,
        "Load",
        id,
        1_750_000_000,
        message,
    ))
    .into_bytes()
}

/// One signed POST; returns how long the ack took.
async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Duration {
    let started = Instant::now();
    let signature = sign(&body);
    let response = http
        .post(url)
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    started.elapsed()
}

/// POSTs every body with at most `concurrency` in flight; returns each ack's latency.
async fn post_all(url: &str, bodies: Vec<Vec<u8>>, concurrency: usize) -> Vec<Duration> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(bodies.len());
    for body in bodies {
        let (client, gate, url) = (client.clone(), gate.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            post(&client, &url, body).await
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system, all threads) a process has used so far, from `/proc/{pid}/stat`
/// (`self` for this one). Its unit is USER_HZ, which Linux fixes at 100 a second.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The store's writer thread ("assent-store-writer", which Linux cuts to 15 characters).
const WRITER_THREAD: &str = "assent-store-wr";

/// What a thread has done so far, from `/proc/{pid}/task/{tid}/schedstat` and `.../io`.
#[derive(Clone, Copy, Default)]
struct ThreadCounters {
    on_core: Duration,
    /// Runnable, but every core was taken.
    waiting_for_core: Duration,
    /// Bytes handed to write calls (`wchar`): for the writer, the store's pages.
    written: u64,
}

fn thread_named(pid: u32, name: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .map(|task| task.path())
        .find(|task| std::fs::read_to_string(task.join("comm")).is_ok_and(|c| c.trim() == name))
}

fn thread_counters(task: &std::path::Path) -> Option<ThreadCounters> {
    let sched = std::fs::read_to_string(task.join("schedstat")).ok()?;
    let mut ns = sched.split_whitespace().map(|f| f.parse::<u64>().ok());
    let (on_core, waiting) = (ns.next()??, ns.next()??);
    let io = std::fs::read_to_string(task.join("io")).ok()?;
    let written = io
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))?
        .trim()
        .parse()
        .ok()?;
    Some(ThreadCounters {
        on_core: Duration::from_nanos(on_core),
        waiting_for_core: Duration::from_nanos(waiting),
        written,
    })
}

/// The writer's counters, sampled every 50 ms so that the accepted span (known only at
/// the end) can be cut out of the whole run.
struct WriterSamples {
    task: std::path::PathBuf,
    samples: Arc<std::sync::Mutex<Vec<(Instant, ThreadCounters)>>>,
}

impl WriterSamples {
    fn start(pid: u32) -> Option<WriterSamples> {
        let task = thread_named(pid, WRITER_THREAD)?;
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (into, from) = (samples.clone(), task.clone());
        tokio::spawn(async move {
            while let Some(counters) = thread_counters(&from) {
                into.lock().unwrap().push((Instant::now(), counters));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Some(WriterSamples { task, samples })
    }

    /// Its shares of the span from `from` to `to`: on a core, waiting for one, and the rest
    /// (blocked in fsync, or without work); and what it wrote in the whole run so far.
    fn report(&self, from: Instant, to: Instant, conversations: usize) -> Option<String> {
        let samples = self.samples.lock().unwrap();
        let first = samples.iter().rev().find(|(at, _)| *at <= from)?;
        let last = samples.iter().rev().find(|(at, _)| *at <= to)?;
        let now = thread_counters(&self.task)?;
        let span = last.0.duration_since(first.0).as_secs_f64();
        if span <= 0.0 {
            return None;
        }
        let share = |d: Duration| 100.0 * d.as_secs_f64() / span;
        let on_core = share(last.1.on_core - first.1.on_core);
        let waiting = share(last.1.waiting_for_core - first.1.waiting_for_core);
        let written = (now.written - first.1.written) as f64;
        Some(format!(
            "on a core {on_core:.0} %, waiting for a core {waiting:.0} %, blocked or idle {:.0} % (over {span:.2} s); wrote {:.0} MB in the run, {:.0} KB per conversation",
            (100.0 - on_core - waiting).max(0.0),
            written / 1e6,
            written / 1e3 / conversations as f64
        ))
    }
}

/// Starts the floor server on threads of its own, as many workers as assent-local's tokio
/// runtime has by default (one per core), so that it does not share the load generator's
/// thread, just as assent-local does not.
fn start_floor() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(async move {
                serve_floor(tokio::net::TcpListener::from_std(listener).unwrap()).await
            })
    });
    addr
}

/// A bare hyper server: reads each request and answers `{}` with 200, nothing else.
async fn serve_floor(listener: tokio::net::TcpListener) {
    use http_body_util::{BodyExt, Full};
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(
                |request: hyper::Request<hyper::body::Incoming>| async move {
                    // Read the whole body, as a webhook handler must before it answers.
                    request.into_body().collect().await?;
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                        bytes::Bytes::from_static(b"{}"),
                    )))
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), answer)
                .await;
        });
    }
}

fn main() {
    // As assent-local does: the load generator's own page faults would take cores from it.
    if let Err(e) = assent::local::disable_transparent_huge_pages() {
        eprintln!("transparent huge pages stay on in the bench: {e}");
    }
    // The load generator and the Graph sandbox run on this one thread: a second worker
    // (tokio's default here) used more CPU for the same load, taken from the server's cores
    // (docs/PERFORMANCE.md, the eighth period).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let is_silent = |i: usize| i % 10 == 0;
    let silent = (0..n).filter(|i| is_silent(*i)).count();
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("assent-local");
    assert!(
        binary.exists(),
        "build it first: cargo build --profile local -p assent-local --bins --examples"
    );

    let graph = GraphSandbox::graph("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // To compare worker counts and allocator options (docs/PERFORMANCE.md).
    let passed_on: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name == "TOKIO_WORKER_THREADS" || name.starts_with("MIMALLOC_"))
        .collect();
    let mut child = tokio::process::Command::new(&binary)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--set",
            "policy_url=https://example.com/privacy",
        ])
        .args(["--set", &format!("timeout_seconds={TIMEOUT_SECONDS}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env_clear()
        .env("WHATSAPP_APP_SECRET", SECRET)
        .env("WHATSAPP_ACCESS_TOKEN", "t")
        .env("WHATSAPP_API_BASE", graph.base_url())
        .env("ASSENT_LOG", "warn")
        .envs(passed_on)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let url = format!("http://127.0.0.1:{port}/webhooks/whatsapp");
    let client = reqwest::Client::new();
    while client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let contacts: Vec<String> = (0..n).map(|i| format!("49{i:011}")).collect();
    let hellos: Vec<Vec<u8>> = contacts
        .iter()
        .map(|c| body(c, &format!("{c}.1"), sandbox::text("Hello")))
        .collect();
    let taps: Vec<Vec<u8>> = contacts
        .iter()
        .map(|c| {
            body(
                c,
                &format!("{c}.2"),
                sandbox::button_reply("agree", "AGREE & PROCEED"),
            )
        })
        .collect();
    let graph = Arc::new(graph);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(concurrency));
    let writer = WriterSamples::start(pid);
    tokio::time::sleep(Duration::from_millis(60)).await;
    // Building and signing the bodies above is not load: the bench's CPU counts from here.
    let bench_cpu_before = cpu_seconds("self");
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, contact) in contacts.iter().enumerate() {
        let (graph, http, gate, url, contact) = (
            graph.clone(),
            http.clone(),
            gate.clone(),
            url.clone(),
            contact.clone(),
        );
        let hello = hellos[i].clone();
        let tap = (!is_silent(i)).then(|| taps[i].clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let mut acks = vec![post(&http, &url, hello).await];
            graph
                .wait_for_recipient(&contact, 2, Duration::from_secs(120))
                .await;
            let accepts = tap.is_some();
            match tap {
                Some(tap) => acks.push(post(&http, &url, tap).await),
                // A silent contact holds no slot while its timeout runs.
                None => drop(permit),
            }
            graph
                .wait_for_recipient(&contact, 3, Duration::from_secs(120))
                .await;
            (acks, accepts.then(|| started.elapsed()))
        }));
    }
    let mut acks = Vec::with_capacity(2 * n);
    let mut accepted_span = Duration::ZERO;
    for task in tasks {
        let (mine, finished) = task.await.unwrap();
        acks.extend(mine);
        accepted_span = accepted_span.max(finished.unwrap_or_default());
    }
    let expected = 3 * n; // link, question, then the thanks or the timeout message
    let done = graph.sent().len();
    let elapsed = started.elapsed();
    let peak = peak_memory_kib(pid);
    let server_cpu = cpu_seconds(&pid.to_string());
    let bench_cpu = cpu_seconds("self")
        .zip(bench_cpu_before)
        .map(|(now, before)| now - before);
    let writer = writer.and_then(|w| w.report(started, started + accepted_span, n));

    // Timeout lateness: the timeout message's arrival minus (question's arrival + timeout).
    let mut by_recipient: std::collections::HashMap<String, Vec<_>> = Default::default();
    for message in graph.sent() {
        by_recipient.entry(message.to()).or_default().push(message);
    }
    let mut lateness = Vec::new();
    for (_, c) in contacts.iter().enumerate().filter(|(i, _)| is_silent(*i)) {
        let mine = by_recipient.remove(c).unwrap_or_default();
        let question = mine.iter().find(|m| !m.options().is_empty());
        let timeout = mine
            .iter()
            .find(|m| m.text().starts_with("We did not get your answer"));
        if let (Some(q), Some(t)) = (question, timeout) {
            let deadline = q.received_at + Duration::from_secs(TIMEOUT_SECONDS);
            lateness.push(
                t.received_at
                    .duration_since(deadline)
                    .unwrap_or(Duration::ZERO),
            );
        }
    }
    let _ = child.kill().await;

    // The floor: the same requests against a bare hyper server that answers 200 at once.
    let floor_url = format!("http://{}/webhooks/whatsapp", start_floor());
    let taps: Vec<Vec<u8>> = taps
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !is_silent(*i))
        .map(|(_, tap)| tap)
        .collect();
    let floor_started = Instant::now();
    let mut floor_acks = post_all(&floor_url, hellos, concurrency).await;
    floor_acks.extend(post_all(&floor_url, taps, concurrency).await);
    let floor_elapsed = floor_started.elapsed();

    acks.sort();
    floor_acks.sort();
    lateness.sort();
    let requests = acks.len() as f64;
    println!(
        "conversations {n} ({} accept, {silent} silent), concurrency {concurrency}",
        n - silent
    );
    println!("messages: {done} sent, {expected} expected");
    let accepted = n - silent;
    println!(
        "complete flows/s: {:.0}  ({accepted} accepted flows, first hello to last thanks, in {:.2} s; all {n} ended after {:.2} s)",
        accepted as f64 / accepted_span.as_secs_f64(),
        accepted_span.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "webhook ack: p50 {:?}  p99 {:?}",
        percentile(&acks, 0.50),
        percentile(&acks, 0.99)
    );
    println!(
        "timeout lateness: p50 {:?}  p99 {:?}  ({} timeouts)",
        percentile(&lateness, 0.50),
        percentile(&lateness, 0.99),
        lateness.len()
    );
    println!(
        "peak memory of assent-local: {} KiB",
        peak.map_or("?".into(), |k| k.to_string())
    );
    // CPU time depends less on the machine's speed of the day than throughput does: the
    // figure to compare when changing the server.
    if let (Some(server), Some(bench)) = (server_cpu, bench_cpu) {
        println!(
            "CPU: assent-local {server:.2} s ({:.0} µs per conversation), this bench from the first hello (load and Graph sandbox) {bench:.2} s, over {:.2} s",
            server * 1e6 / n as f64,
            elapsed.as_secs_f64()
        );
    }
    // The store's one writer thread runs every commit in turn: when it is never idle, it
    // is what bounds the flows/s.
    println!(
        "store writer, first hello to last thanks: {}",
        writer.unwrap_or_else(|| "not sampled".into())
    );
    let (floor_rate, server_rate) = (
        requests / floor_elapsed.as_secs_f64(),
        requests / accepted_span.as_secs_f64(),
    );
    println!(
        "HTTP floor: {floor_rate:.0} requests/s (assent-local {server_rate:.0}/s, first hello to last thanks: 1 : {:.1}); ack p50 {:?} p99 {:?}",
        floor_rate / server_rate,
        percentile(&floor_acks, 0.50),
        percentile(&floor_acks, 0.99)
    );
    let flows_per_second = accepted as f64 / accepted_span.as_secs_f64();
    println!(
        "goals (docs/PERFORMANCE.md): {}",
        goals(
            flows_per_second,
            percentile(&acks, 0.99),
            (!lateness.is_empty()).then(|| percentile(&lateness, 0.99))
        )
    );
}

/// This round's local goals, each with the run's figure: met or not.
fn goals(flows_per_second: f64, ack_p99: Duration, lateness_p99: Option<Duration>) -> String {
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let lateness = match lateness_p99 {
        Some(p99) => format!("{} ({p99:.1?})", verdict(p99 < Duration::from_millis(100))),
        None => "not measured (no timeouts)".into(),
    };
    format!(
        "complete flows/s >= 5,000 {} ({flows_per_second:.0}); webhook ack p99 < 5 ms {} ({ack_p99:.1?}); timeout lateness p99 < 100 ms {lateness}",
        verdict(flows_per_second >= 5000.0),
        verdict(ack_p99 < Duration::from_millis(5)),
    )
}
