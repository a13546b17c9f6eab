//! The exporter's HTTP server: its routes ([`routes`]: `/`, the metrics path, `/probe`, `/sd`,
//! `/-/healthy`, `/-/ready`, `/-/reload`), the bounds on what a client can hold ([`conn`]), and
//! the protection of the endpoint ([`guard`] applying the [`webconfig`] file: TLS, basic auth,
//! headers, rate limit).
//!
//! [`Server`] is the server's state over the fleet: it holds an `Arc` of the exporter's
//! [`App`] (the targets and settings, swapped whole on reload) beside what only the server
//! uses — the web configuration in force and the open connections. It reloads the web config
//! file with the targets, as one step ([`Server::reload`]). The server knows the fleet; the fleet
//! never names the server.

pub mod conn;
pub mod guard;
pub mod routes;
pub mod webconfig;

use std::sync::Arc;

pub use routes::{serve, serve_all};

use crate::config::Config;
use crate::exporter::App;
use conn::Registry;
use guard::Web;
use webconfig::{WebConfig, WebConfigError};

/// Why a reload failed: the fleet's configuration, or the web configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration or a target (see [`crate::exporter::ReloadError`]).
    #[error(transparent)]
    Fleet(#[from] crate::exporter::ReloadError),
    /// The web configuration file (`--web.config.file`) is wrong.
    #[error(transparent)]
    Web(#[from] WebConfigError),
}

/// The web configuration `config` names (none: plain HTTP, no authentication).
pub fn load_web(config: &Config) -> Result<WebConfig, WebConfigError> {
    match &config.web_config_file {
        Some(path) => WebConfig::load(path),
        None => Ok(WebConfig::default()),
    }
}

/// The server's state: the fleet it serves, and what only the server keeps.
pub struct Server {
    /// The exporter's targets and settings, and its own metrics.
    pub app: Arc<App>,
    /// The endpoint's TLS, authentication and headers (`--web.config.file`).
    pub web: Web,
    /// The open connections.
    pub connections: Arc<Registry>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `app`, with the web configuration its settings name.
    pub fn new(app: Arc<App>) -> Result<Arc<Self>, WebConfigError> {
        let web = load_web(&app.settings())?;
        Ok(Self::with_web(app, web))
    }

    /// A server for `app` with `web`, already read (start-up reads it before the targets are
    /// built, so a bad file is the first error told).
    pub fn with_web(app: Arc<App>, web: WebConfig) -> Arc<Self> {
        Arc::new(Self {
            app,
            web: Web::new(web),
            connections: Default::default(),
        })
    }

    /// Reads the configuration and the web configuration file again and switches to both, or to
    /// neither: a bad web config keeps the targets as they were, and a bad target keeps the web
    /// config ([`App::reload_with`], which logs the outcome).
    pub fn reload(&self) -> Result<(), ReloadError> {
        self.app.reload_with(
            |cfg| Ok::<_, ReloadError>(load_web(cfg)?),
            |web| self.web.set(web),
        )
    }
}
