//! The harness for tests that run the real `assent-local` binary: start it with a data
//! directory and environment, sign webhooks as Meta does, and watch the Graph API sandbox.
#![allow(dead_code)] // each test crate uses its own part of this

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

use assent::channels::whatsapp::sandbox::{self, GraphSandbox, SentMessage};

pub const SECRET: &str = "e2e-app-secret-5f2c";
pub const ACCESS_TOKEN: &str = "e2e-access-token-91ab";
pub const VERIFY_TOKEN: &str = "e2e-verify";
pub const PNID: &str = "106540352242922";
pub const PATIENCE: Duration = Duration::from_secs(20);

pub const ADMIN_TOKEN: &str = "e2e-admin-token-77d1";

pub struct Server {
    child: Child,
    pub base: String,
    log: PathBuf,
    dir: std::sync::Arc<tempfile::TempDir>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    graph_base: String,
    pub http: reqwest::Client,
}

pub fn meta_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts with `env`; WhatsApp sends go to `graph` (any sandbox: unused unless
    /// WhatsApp is configured).
    pub async fn start(graph: &GraphSandbox, env: &[(&str, &str)], args: &[&str]) -> Server {
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = args.iter().map(|a| a.to_string()).collect();
        Server::launch(graph.base_url(), dir, env, args).await
    }

    /// With the WhatsApp secrets and the admin token set.
    pub async fn signed(graph: &GraphSandbox, args: &[&str]) -> Server {
        let env = [
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WHATSAPP_ACCESS_TOKEN", ACCESS_TOKEN),
            ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
            ("ASSENT_ADMIN_TOKEN", ADMIN_TOKEN),
        ];
        Server::start(graph, &env, args).await
    }

    async fn launch(
        graph_base: String,
        dir: std::sync::Arc<tempfile::TempDir>,
        env: Vec<(String, String)>,
        args: Vec<String>,
    ) -> Server {
        let port = free_port();
        let log = dir.path().join(format!("out-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_assent-local"));
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--set", "policy_url=https://example.com/privacy"])
            .args(&args)
            .env_clear()
            .env("WHATSAPP_API_BASE", &graph_base)
            .envs(env.iter().cloned())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .kill_on_drop(true);
        let child = command.spawn().unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            dir,
            env,
            args,
            graph_base,
            http: reqwest::Client::new(),
        };
        server.wait_ready().await;
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Stops (SIGTERM), runs `meanwhile` while nothing holds the store, and starts again
    /// on the same data directory.
    pub async fn restart_with(self, meanwhile: impl FnOnce()) -> Server {
        let (graph_base, dir, env, args) = (
            self.graph_base.clone(),
            self.dir.clone(),
            self.env.clone(),
            self.args.clone(),
        );
        assert!(self.stop().await.success());
        meanwhile();
        Server::launch(graph_base, dir, env, args).await
    }

    /// Kills the process outright (SIGKILL: no draining, nothing flushed that was not
    /// durable already) and starts it again on the same data directory.
    pub async fn crash_and_restart(mut self) -> Server {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        let (graph_base, dir, env, args) = (
            self.graph_base.clone(),
            self.dir.clone(),
            self.env.clone(),
            self.args.clone(),
        );
        drop(self);
        Server::launch(graph_base, dir, env, args).await
    }

    /// The data directory (the store file is `assent.redb` in it).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::time::Instant::now() < deadline {
            if self
                .http
                .get(format!("{}/healthz", self.base))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("assent-local did not start:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn post_raw(&self, body: Vec<u8>, signature: Option<String>) -> (u16, String) {
        let mut request = self
            .http
            .post(format!("{}/webhooks/whatsapp", self.base))
            .header("content-type", "application/json");
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.body(body).send().await.unwrap();
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    /// A POST with `headers` to `path`; returns the status, content type and body.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, String, String) {
        let mut request = self.http.post(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body(body).send().await.unwrap();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (
            response.status().as_u16(),
            content_type,
            response.text().await.unwrap_or_default(),
        )
    }

    /// Polls an admin GET until `done` holds (the steps run after the webhook is answered).
    pub async fn eventually(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (_, body) = self.admin_json(reqwest::Method::GET, path, None).await;
            if done(&body) || tokio::time::Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The signed webhook request [`Server::send`] makes, to post from elsewhere (a task).
    pub fn signed_request(&self, from: &str, id: &str, message: Value) -> reqwest::RequestBuilder {
        let value = sandbox::message_webhook(PNID, from, "José Ñandú", id, 1_750_000_000, message);
        let body = sandbox::meta_json(&value).into_bytes();
        let signature = meta_signature(&body);
        self.http
            .post(format!("{}/webhooks/whatsapp", self.base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
    }

    /// Posts one message as Meta would, signed.
    pub async fn send(&self, from: &str, id: &str, message: Value) -> (u16, String) {
        let value = sandbox::message_webhook(PNID, from, "José Ñandú", id, 1_750_000_000, message);
        let body = sandbox::meta_json(&value).into_bytes();
        let signature = meta_signature(&body);
        self.post_raw(body, Some(signature)).await
    }

    /// An admin request with the token; returns the status and the body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    pub async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, text) = self.admin(method, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap() as i32;
        // SIGTERM, as a process manager would send.
        send_sigterm(pid);
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("stops after SIGTERM")
            .unwrap()
    }
}

fn send_sigterm(pid: i32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn sent_to(graph: &GraphSandbox, wa_id: &str) -> Vec<SentMessage> {
    graph.sent_to(wa_id)
}

pub async fn wait_for_to(graph: &GraphSandbox, wa_id: &str, count: usize) -> Vec<SentMessage> {
    graph.wait_for_to(wa_id, count, PATIENCE).await
}

/// A signed `assent-local` and its Graph API sandbox on a runtime of their own, for
/// property tests, whose cases run one after another outside async code.
pub fn blocking_server() -> (tokio::runtime::Runtime, GraphSandbox, Server) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (graph, server) = runtime.block_on(async {
        let graph = graph().await;
        let server = Server::signed(&graph, &[]).await;
        (graph, server)
    });
    (runtime, graph, server)
}

pub async fn graph() -> GraphSandbox {
    GraphSandbox::graph("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}
