//! Configuration: `mss.ini`, `mss_var_param.ini` and the embedded defaults (DESIGN.md §1–§2).
//!
//! - [`model`]: the validated types ([`Config`], [`ServerConfig`], [`LineConfig`]…).
//! - [`error`]: [`Diagnostic`]s that name `file:line`, section and key; all are collected.
//! - `ini_file`: `rust-ini` parsing plus a line index (rust-ini keeps no line numbers).
//! - `values`: parsers for addresses, durations, names….
//! - `validate`: known sections and keys, required keys, cross-references; `line_section`:
//!   the keys of `[line:NAME]`.
//! - [`var_params`]: `mss_var_param.ini` and [`effective_call_id_mode`].
//! - [`default_users`]: the generated users `100`, `101`, `102` of the embedded defaults.
//! - [`self_signed`]: the generated certificate of `tls:` listeners without `[tls]` files.
//!
//! [`load`] finds and reads the files the way the command line promises.

mod call_rules;
pub mod default_users;
pub mod error;
mod ini_file;
mod line_section;
pub mod model;
pub mod self_signed;
mod validate;
mod values;
pub mod var_params;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Diagnostic, Diagnostics};
pub use model::{
    CallIdMode, Config, GroupConfig, ImConfig, LineConfig, ListenSpec, MediaConfig, MediaRelay,
    SecurityConfig, ServerConfig, SipTransport, TlsConfig, TlsFiles, UserCallRules, UserConfig,
};
pub use var_params::{effective_call_id_mode, VarParams};

/// File name of the configuration looked for in the current folder.
pub const CONFIG_FILE: &str = "mss.ini";
/// File name of the variable parameters looked for beside the configuration.
pub const VAR_FILE: &str = "mss_var_param.ini";

/// The configuration in force and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// The variable parameters.
    pub var: VarParams,
    /// The configuration file, `None` when running on embedded defaults.
    pub config_path: Option<PathBuf>,
    /// The variable-parameter file, `None` when there is none.
    pub var_path: Option<PathBuf>,
}

impl Loaded {
    /// Whether mss runs on the embedded defaults (no configuration file).
    pub fn is_embedded(&self) -> bool {
        self.config_path.is_none()
    }

    /// Things that are valid but probably not what the admin wants.
    pub fn warnings(&self) -> Vec<String> {
        let c = &self.config;
        let mut w = Vec::new();
        if !c.server.admin.ip().is_loopback() {
            w.push(format!(
                "[server] admin = {}: the admin API has no authentication and is not on loopback",
                c.server.admin
            ));
        }
        if c.tls.files.is_some() && !c.server.uses_certificate() {
            w.push(
                "[tls] names a certificate but no listen address is tls: or wss: (nothing uses it)"
                    .to_string(),
            );
        }
        if !self.is_embedded() && c.users.is_empty() {
            w.push("no [user:NAME] section: no local user can register".to_string());
        }
        let sec = &c.security;
        if sec.rate_limit > 0 && sec.rate_limit < 20 {
            w.push(format!(
                "[security] rate_limit = {}: an office behind one NAT address may send more \
                 requests a second than that",
                sec.rate_limit
            ));
        }
        for l in &c.lines {
            if l.owner.is_none() {
                w.push(format!(
                    "[line:{}] has no owner: its incoming calls have nobody to ring",
                    l.name
                ));
            }
            if l.expires < 60 {
                w.push(format!(
                    "[line:{}] expires = {} is very short; registrars usually refuse it with 423",
                    l.name, l.expires
                ));
            }
        }
        w
    }

    /// A few lines that say what the configuration contains (for `mss check-config`).
    pub fn summary(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        match &self.config_path {
            Some(p) => s.push_str(&format!("config: {}\n", p.display())),
            None => s.push_str(&format!(
                "config: embedded defaults (no --config and no ./{CONFIG_FILE})\n"
            )),
        }
        match &self.var_path {
            Some(p) => s.push_str(&format!("variable parameters: {}\n", p.display())),
            None => s.push_str("variable parameters: none\n"),
        }
        s.push_str(&format!("domain: {}\n", c.server.domain));
        let listen: Vec<String> = c.server.listen.iter().map(ToString::to_string).collect();
        s.push_str(&format!("listen: {}\n", listen.join(", ")));
        s.push_str(&format!("data: {}\n", c.server.data_dir.display()));
        s.push_str(&tls_summary(c));
        s.push_str(&format!("admin: http://{}\n", c.server.admin));
        match &c.server.digest_algorithms {
            Some(list) => {
                let names: Vec<&str> = list.iter().map(|a| a.as_str()).collect();
                s.push_str(&format!(
                    "digest: {} (for every client)\n",
                    names.join(", ")
                ));
            }
            None => s.push_str(
                "digest: MD5, SHA-256 (MD5 alone for clients known to fail on SHA-256)\n",
            ),
        }
        if self.is_embedded() {
            s.push_str(&format!(
                "users: {} (passwords generated at first start)\n",
                default_users::DEFAULT_USER_NAMES.join(", ")
            ));
        } else {
            let users: Vec<&str> = c.users.iter().map(|u| u.name.as_str()).collect();
            s.push_str(&format!("users: {} ({})\n", users.len(), users.join(", ")));
        }
        let limits: Vec<String> = c
            .users
            .iter()
            .filter_map(|u| Some(format!("{} = {}", u.name, u.max_calls?)))
            .collect();
        if !limits.is_empty() {
            s.push_str(&format!("user call limits: {}\n", limits.join(", ")));
        }
        s.push_str(&security_summary(&c.security));
        s.push_str(&format!(
            "calls: at most {} at once; {} + number calls out through a line; media relay: \
             {}\n",
            c.server.max_calls,
            c.server.outgroup_prefix,
            media_summary(&c.media)
        ));
        for u in &c.users {
            let r = &u.calls;
            let mut parts = vec![format!("call level {}", r.call_level.as_str())];
            for (what, to) in [
                ("always", &r.forward_always),
                ("busy", &r.forward_busy),
                ("no answer", &r.forward_no_answer),
                ("unreachable", &r.forward_unreachable),
            ] {
                if let Some(to) = to {
                    parts.push(format!("forward {what} → {to}"));
                }
            }
            if *r != UserCallRules::default() {
                s.push_str(&format!("  user {}: {}\n", u.name, parts.join(", ")));
            }
        }
        for g in &c.groups {
            s.push_str(&format!(
                "  group {}: {} {} (ring {})\n",
                g.name,
                g.strategy.as_str(),
                g.members.join(", "),
                values::duration_text(g.ring_timeout)
            ));
        }
        s.push_str(&format!("lines: {}\n", c.lines.len()));
        for l in &c.lines {
            s.push_str(&format!(
                "  {}: {}@{} via {}:{}:{}, call-id {}, {}\n",
                l.name,
                l.number,
                l.domain,
                l.transport,
                l.registrar_host,
                l.registrar_port
                    .map_or_else(|| "SRV".to_owned(), |p| p.to_string()),
                effective_call_id_mode(l, &self.var).as_str(),
                if l.outgoing {
                    "incoming and outgoing calls"
                } else {
                    "incoming calls only"
                }
            ));
        }
        s
    }
}

/// The `tls:` line of the summary: which certificate the TLS and WSS listeners present.
fn tls_summary(c: &Config) -> String {
    if !c.server.uses_certificate() {
        return "tls: no tls: or wss: listener\n".to_owned();
    }
    let timeout = values::duration_text(c.tls.handshake_timeout);
    match &c.tls.files {
        Some(f) => format!(
            "tls: certificate {}, key {}, handshake timeout {timeout}\n",
            f.certificate.display(),
            f.private_key.display()
        ),
        None => format!(
            "tls: self-signed certificate {} (generated at first start), handshake timeout {timeout}\n",
            c.server
                .data_dir
                .join(self_signed::CERTIFICATE_FILE)
                .display()
        ),
    }
}

/// The `[media]` line of the `check-config` summary.
fn media_summary(m: &MediaConfig) -> String {
    match m.relay {
        MediaRelay::Never => "never (SDP passed through)".to_owned(),
        MediaRelay::Always => format!(
            "always (ports {} on {}, SDP address: {}; rtp_timeout {}, hold_timeout {}{}{})",
            m.rtp_ports,
            m.rtp_address,
            m.public_address.map_or_else(
                || "the one each leg reached mss on".to_owned(),
                |a| a.to_string()
            ),
            values::duration_text(m.rtp_timeout),
            values::duration_text(m.hold_timeout),
            match m.realtime_priority {
                Some(0) => String::new(),
                Some(p) => format!("; SCHED_FIFO priority {p} when permitted"),
                None => "; SCHED_FIFO when permitted (auto)".to_owned(),
            },
            match m.io {
                mss_media::io::ReceiveMode::Uring => "",
                _ => "; io epoll",
            },
        ),
    }
}

/// The `[security]` line of the summary.
fn security_summary(sec: &SecurityConfig) -> String {
    let bans = if sec.ban_after == 0 {
        "no bans".to_owned()
    } else {
        format!(
            "ban after {} failed answers within {} for {} (doubling on repeats)",
            sec.ban_after,
            values::duration_text(sec.ban_window),
            values::duration_text(sec.ban_time)
        )
    };
    let rate = match sec.rate_limit {
        0 => "no rate limit".to_owned(),
        n => format!("rate limit {n} requests/s per address"),
    };
    let ignore = if sec.ignore.is_empty() {
        "none".to_owned()
    } else {
        let nets: Vec<String> = sec.ignore.iter().map(ToString::to_string).collect();
        nets.join(", ")
    };
    format!("security: {bans}; {rate}; ignored: {ignore}\n")
}

fn read(path: &Path) -> Result<String, ConfigError> {
    fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The default SIP domain: the machine's host name (from `/proc/sys/kernel/hostname`, else
/// `/etc/hostname`), or `localhost` when neither gives a valid name. Requests to any local IP
/// address are accepted as well (see [`ServerConfig::is_local_domain`]).
pub fn default_domain() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .filter_map(|t| values::host(t.trim()).ok())
        .next()
        .unwrap_or_else(|| "localhost".to_string())
}

/// Loads the configuration as `mss serve` and `mss check-config` do.
///
/// - `config`: the file named by `--config`; without it `./mss.ini` if it exists, else the
///   embedded defaults.
/// - `var`: the file named by `--var`; without it `mss_var_param.ini` in the folder of the
///   configuration file (the current folder on embedded defaults), if it exists.
///
/// Relative `data_dir` values are relative to the folder of the configuration file.
///
/// # Errors
/// [`ConfigError::Read`] when a named file cannot be read; [`ConfigError::Invalid`] with
/// every problem of both files.
pub fn load(config: Option<&Path>, var: Option<&Path>) -> Result<Loaded, ConfigError> {
    let config_path = match config {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(CONFIG_FILE)).filter(|p| p.is_file()),
    };
    let base_dir = config_path
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let var_path = match var {
        Some(p) => Some(p.to_path_buf()),
        None => Some(base_dir.join(VAR_FILE)).filter(|p| p.is_file()),
    };
    let mut diags = Diagnostics::default();

    let config = match &config_path {
        None => Some(Config::embedded(default_domain())),
        Some(path) => {
            let text = read(path)?;
            let name = path.display().to_string();
            match ini_file::parse(&name, &text)
                .and_then(|f| validate::config_from_ini(&f, &base_dir, default_domain()))
            {
                Ok(c) => Some(c),
                Err(d) => {
                    diags.0.extend(d.0);
                    None
                }
            }
        }
    };
    let var_params = match &var_path {
        None => Some(VarParams::default()),
        Some(path) => {
            let text = read(path)?;
            let name = path.display().to_string();
            match ini_file::parse(&name, &text).and_then(|f| var_params::var_params_from_ini(&f)) {
                Ok(v) => Some(v),
                Err(d) => {
                    diags.0.extend(d.0);
                    None
                }
            }
        }
    };
    match (config, var_params) {
        (Some(config), Some(var)) => Ok(Loaded {
            config,
            var,
            config_path,
            var_path,
        }),
        _ => Err(ConfigError::Invalid(diags)),
    }
}

/// Parses a `listen` value (`udp:IP:PORT, tcp:IP:PORT, wss:IP:PORT`), as `mss serve
/// --listen` takes it.
///
/// # Errors
/// A message naming the item that is wrong.
pub fn parse_listen(v: &str) -> Result<Vec<ListenSpec>, String> {
    values::listen_list(v)
}

/// Whether `err` is "file not found" (for friendlier messages).
pub fn is_not_found(err: &ConfigError) -> bool {
    matches!(err, ConfigError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_files_and_var_beside_config() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mss.ini");
        fs::write(
            &cfg,
            "[server]\ndomain = pbx.test\n[user:101]\npassword = x\n",
        )
        .unwrap();
        fs::write(
            dir.path().join(VAR_FILE),
            "[sip]\ngVarSipRegSameDialog = 1\n",
        )
        .unwrap();
        let l = load(Some(&cfg), None).unwrap();
        assert_eq!(l.config.server.domain, "pbx.test");
        assert_eq!(l.config.server.data_dir, dir.path().join("mss-data"));
        assert_eq!(l.var.sip_reg_same_dialog, Some(true));
        assert_eq!(l.var_path, Some(dir.path().join(VAR_FILE)));
        assert!(l.summary().contains("users: 1 (101)"));
        assert!(
            l.summary().contains(&format!(
                "tls: self-signed certificate {} (generated at first start), handshake timeout 10s\n",
                dir.path().join("mss-data").join("tls-cert.pem").display()
            )),
            "{}",
            l.summary()
        );
        assert!(l.summary().contains("MD5 alone for clients known to fail"));
        assert!(
            l.summary().contains(
                "security: ban after 10 failed answers within 1m for 15m (doubling on \
                 repeats); rate limit 100 requests/s per address; ignored: 127.0.0.0/8, ::1\n"
            ),
            "{}",
            l.summary()
        );
        assert!(
            l.summary().contains(
                "calls: at most 1000 at once; 9 + number calls out through a line; media \
                 relay: always (ports 20000-29999 on 0.0.0.0, SDP address: the one each leg \
                 reached mss on; rtp_timeout 1m, hold_timeout 2h; SCHED_FIFO when permitted \
                 (auto))\n"
            ),
            "{}",
            l.summary()
        );
        assert!(!l.summary().contains("user call limits"));
        assert!(l.warnings().is_empty(), "{:?}", l.warnings());
        fs::write(
            &cfg,
            "[server]\ndomain = pbx.test\ndigest_algorithms = sha-256, md5\nmax_calls = 8\n\
             [user:101]\npassword = x\nmax_calls = 2\n[user:102]\npassword = y\n\
             [line:p]\nregistrar = r.example\nnumber = 1\npassword = p\nowner = 101\n\
             outgoing = no\n[media]\nrelay = never\n",
        )
        .unwrap();
        let l = load(Some(&cfg), None).unwrap();
        assert!(
            l.summary()
                .contains("digest: SHA-256, MD5 (for every client)"),
            "{}",
            l.summary()
        );
        let summary = l.summary();
        assert!(summary.contains("user call limits: 101 = 2\n"), "{summary}");
        assert!(summary.contains("calls: at most 8 at once"), "{summary}");
        assert!(
            summary.contains("call-id same, incoming calls only\n"),
            "{summary}"
        );
    }

    #[test]
    fn warnings_for_open_admin_and_ownerless_lines() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mss.ini");
        fs::write(
            &cfg,
            "[server]\nadmin = 0.0.0.0:5080\n[line:l]\nregistrar = r.example\nnumber = 1\npassword = p\nexpires = 30\n[security]\nrate_limit = 5\n",
        )
        .unwrap();
        let w = load(Some(&cfg), None).unwrap().warnings();
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(w[0].contains("not on loopback"));
        assert!(
            w[2].contains("[security] rate_limit = 5: an office"),
            "{w:?}"
        );
    }

    #[test]
    fn errors_of_both_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mss.ini");
        let var = dir.path().join("v.ini");
        fs::write(&cfg, "[server]\nport = 1\n").unwrap();
        fs::write(&var, "[sip]\ngVarSipRegSameDialog = 2\n").unwrap();
        let e = load(Some(&cfg), Some(&var)).unwrap_err().to_string();
        assert!(e.contains("mss.ini:2: [server] port: unknown key"), "{e}");
        assert!(
            e.contains("v.ini:2: [sip] gVarSipRegSameDialog: \"2\" is not 0 or 1"),
            "{e}"
        );
    }

    #[test]
    fn missing_named_file_is_a_read_error() {
        let e = load(Some(Path::new("/nonexistent/mss.ini")), None).unwrap_err();
        assert!(is_not_found(&e));
        assert!(e.to_string().contains("/nonexistent/mss.ini"));
    }

    #[test]
    fn default_domain_is_a_valid_host() {
        let d = default_domain();
        assert!(values::host(&d).is_ok(), "{d}");
    }
}
