//! The one-process host: the same runtime behind one HTTP server, over the embedded
//! store. The doorbell is an in-process queue per contact; timers are persisted in the
//! store and fired by a loop here.

mod doorbell;
mod huge_pages;

pub use doorbell::LocalDoorbell;
pub use huge_pages::disable_transparent_huge_pages;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::channels::Channels;
use crate::channels::web::WebChat;
use crate::ports::{Clock, Doorbell, StoreError};
use crate::runtime::{Runtime, RuntimeConfig, RuntimeError, WebhookRequest, WebhookResponse};
use crate::store::EmbeddedStore;
use crate::timers::LocalTimers;
use crate::workflow::{PublishedWorkflow, Workflow};

/// The store file inside the data directory.
pub const STORE_FILE: &str = "assent.redb";

/// How often the runner prunes expired dedup keys, and how many it reads each time: a
/// round over 14 million keys a day, in passes that each take one turn of the store's
/// writer, about 2 ms (`cargo bench -p assent --bench store -- pruning`).
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_BUDGET: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("listen: {0}")]
    Listen(std::io::Error),
}

#[derive(Clone)]
pub struct LocalApp {
    runtime: Arc<Runtime>,
    timers: Arc<LocalTimers>,
    doorbell: Arc<LocalDoorbell>,
    store: EmbeddedStore,
    clock: Arc<dyn Clock>,
    /// The admin API's bearer token; `None`: the admin API is off.
    admin_token: Option<String>,
    /// The web chat whose pages, sessions and long-poll this host serves.
    web: Option<Arc<WebChat>>,
}

impl LocalApp {
    /// Opens the data directory, publishes `workflow` (a no-op if unchanged) and queues
    /// whatever work a previous process left behind.
    pub async fn open(
        data_dir: &Path,
        channels: Channels,
        clock: Arc<dyn Clock>,
        config: RuntimeConfig,
        workflow: &Workflow,
    ) -> Result<(LocalApp, PublishedWorkflow), LocalError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| LocalError::DataDir(data_dir.display().to_string(), e))?;
        let store = EmbeddedStore::open(&data_dir.join(STORE_FILE), clock.now())?;
        let timers = Arc::new(LocalTimers::new(store.clone()));
        let runtime = Arc::new(Runtime::new(
            Arc::new(store.clone()),
            timers.clone(),
            channels,
            clock.clone(),
            config,
        ));
        let published = runtime.publish_and_activate(workflow).await?;
        let doorbell = LocalDoorbell::new(runtime.clone());
        let app = LocalApp {
            runtime,
            timers,
            doorbell,
            store,
            clock,
            admin_token: None,
            web: None,
        };
        for contact in app.store.contacts_with_pending_work().await? {
            app.doorbell.ring(&contact);
        }
        Ok((app, published))
    }

    /// Serves the admin API under /admin, for requests that carry `token`.
    pub fn with_admin(mut self, token: String) -> Self {
        self.admin_token = Some(token);
        self
    }

    /// Serves the web chat's demo page, widget, sessions and long-poll. `web` must also be
    /// one of the channels the app was opened with (it receives and sends as one).
    pub fn with_web_chat(mut self, web: Arc<WebChat>) -> Self {
        self.web = Some(web);
        self
    }

    /// The HTTP routes: webhooks, health, the web chat and the admin API when they are on.
    pub fn router(&self) -> axum::Router {
        let mut router = crate::http::router(Arc::new(self.clone()));
        if let Some(web) = &self.web {
            router = crate::channels::web::routes::added_to(router, web.clone());
        }
        if let Some(token) = &self.admin_token {
            let api = crate::admin::AdminApi {
                runtime: self.runtime.clone(),
                store: Arc::new(self.store.clone()),
                doorbell: self.doorbell.clone(),
            };
            router = router.merge(crate::admin::router(api, Some(token.clone())));
        }
        router
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Accepts a webhook and rings the doorbell for every contact it touched.
    pub async fn accept_webhook(&self, channel: &str, request: WebhookRequest) -> WebhookResponse {
        let response = self.runtime.accept_webhook(channel, request).await;
        for contact in &response.contacts {
            self.doorbell.ring(contact);
        }
        response
    }

    /// Fires every timer that is due by the clock, in one store transaction. Returns how
    /// many timeouts were queued.
    pub async fn fire_due_timers(&self) -> usize {
        self.try_fire_due_timers().await.unwrap_or(0)
    }

    async fn try_fire_due_timers(&self) -> Result<usize, StoreError> {
        let due = self.timers.due(self.clock.now());
        if due.is_empty() {
            return Ok(0);
        }
        match self.store.fire_timers(&due, self.clock.now()).await {
            Ok(fired) => {
                for contact in &fired {
                    self.doorbell.ring(contact);
                }
                Ok(fired.len())
            }
            Err(e) => {
                tracing::warn!(error = %e, timers = due.len(), "timers not fired yet, will retry");
                Err(e)
            }
        }
    }

    /// Waits until every queued contact has been processed.
    pub async fn drain(&self) {
        self.doorbell.drained().await
    }

    /// Serves HTTP on `listener` until `shutdown` resolves, then stops taking requests,
    /// finishes the ones in flight and drains the queue. Accepted messages are durable
    /// before they are acknowledged, so even a hard kill loses none of them.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), LocalError> {
        let timer_loop = tokio::spawn(self.clone().run_timers());
        let pruning = tokio::spawn(self.clone().prune_dedup_keys());
        let router = self.router();
        // The peer address lets the web chat limit new sessions per address.
        let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        timer_loop.abort();
        pruning.abort();
        self.drain().await;
        served.map_err(LocalError::Listen)
    }

    /// Forgets expired dedup keys a slice at a time, for as long as the runner runs.
    async fn prune_dedup_keys(self) {
        loop {
            tokio::time::sleep(PRUNE_EVERY).await;
            match self
                .store
                .prune_dedup_keys(self.clock.now(), PRUNE_BUDGET)
                .await
            {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "expired dedup keys pruned"),
                Err(e) => tracing::warn!(error = %e, "dedup keys not pruned, will retry"),
            }
        }
    }

    /// Fires timers as they come due, on the wall clock.
    async fn run_timers(self) {
        loop {
            let failed = self.try_fire_due_timers().await.is_err();
            let now = self.clock.now();
            let pause = match self.timers.next_deadline() {
                Some(deadline) if deadline > now => now.until(deadline),
                // The store failed: try again shortly.
                Some(_) if failed => Duration::from_millis(200),
                // Came due while the last ones were being fired: fire them now.
                Some(_) => Duration::ZERO,
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.timers.changed() => {}
            }
        }
    }
}

#[async_trait::async_trait]
impl crate::http::WebhookHost for LocalApp {
    async fn accept_webhook(&self, channel: &str, request: WebhookRequest) -> WebhookResponse {
        LocalApp::accept_webhook(self, channel, request).await
    }
}
