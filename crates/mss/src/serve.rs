//! `mss serve`: load the configuration, prepare the data folder, then run the server.
//!
//! Status: this part prepares everything that belongs to the binary (configuration, data
//! folder, default users). Starting the transports, services, store and admin API is wired in
//! as those crates land; until then [`run`] returns [`ServeError::NotWired`].

use std::path::PathBuf;

use crate::cli::ServeArgs;
use crate::config::{self, default_users, ConfigError, Loaded};

/// Why `mss serve` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration could not be loaded; every problem is listed.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The data folder could not be created.
    #[error("cannot create the data folder {}: {source}", path.display())]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The server parts are not wired into the binary yet.
    #[error("the server is not wired yet: configuration loaded and checked, nothing started")]
    NotWired,
}

/// The configuration ready to run, and what to tell the operator once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Configuration, variable parameters and their files.
    pub loaded: Loaded,
    /// Printed to stdout at start: the generated default passwords at first start, or
    /// where they are kept (empty with a configuration file).
    pub announcement: String,
}

/// Loads the configuration for `args`, applies `--data-dir`, creates the data folder and,
/// on embedded defaults, the default users.
///
/// # Errors
/// [`ServeError::Config`] or [`ServeError::DataDir`].
pub fn prepare(args: &ServeArgs) -> Result<Prepared, ServeError> {
    let mut loaded = config::load(args.config.as_deref(), args.var.as_deref())?;
    if let Some(dir) = &args.data_dir {
        loaded.config.server.data_dir = dir.clone();
    }
    let data_dir = loaded.config.server.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| ServeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let mut announcement = String::new();
    if loaded.is_embedded() {
        let defaults = default_users::load_or_create(&data_dir)?;
        announcement = defaults.announcement();
        loaded.config.users = defaults.users;
    }
    Ok(Prepared {
        loaded,
        announcement,
    })
}

/// Runs the server with a prepared configuration.
///
/// # Errors
/// Currently always [`ServeError::NotWired`] (see the module documentation).
pub async fn run(prepared: Prepared) -> Result<(), ServeError> {
    let c = &prepared.loaded.config;
    tracing::info!(
        domain = %c.server.domain,
        users = c.users.len(),
        lines = c.lines.len(),
        data_dir = %c.server.data_dir.display(),
        "configuration loaded"
    );
    for w in prepared.loaded.warnings() {
        tracing::warn!("{w}");
    }
    Err(ServeError::NotWired)
}

/// `mss serve`: prepares, prints the announcement, and runs on a multi-threaded runtime.
///
/// # Errors
/// Whatever [`prepare`] or [`run`] return, or a failure to start the runtime.
pub fn main(args: &ServeArgs) -> Result<(), ServeError> {
    let prepared = prepare(args)?;
    if !prepared.announcement.is_empty() {
        print!("{}", prepared.announcement);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(run(prepared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_with_a_config_file_and_data_dir_override() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mss.ini");
        std::fs::write(&cfg, "[user:101]\npassword = x\n").unwrap();
        let data = dir.path().join("elsewhere");
        let p = prepare(&ServeArgs {
            config: Some(cfg),
            var: None,
            data_dir: Some(data.clone()),
        })
        .unwrap();
        assert_eq!(p.loaded.config.server.data_dir, data);
        assert!(data.is_dir());
        assert!(p.announcement.is_empty());
        assert!(!data.join(default_users::DEFAULT_USERS_FILE).exists());
    }
}
