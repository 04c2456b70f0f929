//! From a parsed `mss.ini` to a [`Config`]: known sections and keys, value checks and
//! cross-references, with every problem collected (not only the first).

use std::path::Path;

use super::error::Diagnostics;
use super::ini_file::{Entry, IniFile, Section};
use super::line_section::line_section;
use super::model::{
    Config, ImConfig, MediaConfig, SecurityConfig, ServerConfig, SipTransport, TlsConfig, TlsFiles,
    UserConfig,
};
use super::values;

/// Keys of `[server]`.
pub(crate) const SERVER_KEYS: &[&str] = &[
    "domain",
    "aliases",
    "listen",
    "data_dir",
    "admin",
    "outgroup_prefix",
    "max_calls",
    "national_prefix",
    "international_prefix",
    "min_expires",
    "max_expires",
    "max_contacts_per_user",
    "nonce_lifetime",
    "completed_transactions_mb",
    "digest_algorithms",
    "session_expires",
    "min_se",
];
/// Keys of `[user:NAME]`.
pub(crate) const USER_KEYS: &[&str] = &[
    "password",
    "display_name",
    "max_calls",
    "call_level",
    "forward_always",
    "forward_busy",
    "forward_no_answer",
    "no_answer_timeout",
    "forward_unreachable",
];
/// Keys of `[im]`.
pub(crate) const IM_KEYS: &[&str] = &[
    "offline_max_messages",
    "offline_max_chars",
    "offline_ttl",
    "rate_limit_per_minute",
];

/// Keys of `[security]`.
pub(crate) const SECURITY_KEYS: &[&str] = &[
    "ban_after",
    "ban_window",
    "ban_time",
    "rate_limit",
    "ignore",
];

/// Keys of `[media]`.
pub(crate) const MEDIA_KEYS: &[&str] = &[
    "relay",
    "rtp_address",
    "public_address",
    "rtp_ports",
    "rtp_timeout",
    "hold_timeout",
    "realtime_priority",
    "io",
];
/// Keys of `[tls]`.
pub(crate) const TLS_KEYS: &[&str] = &["certificate", "private_key", "handshake_timeout"];

/// Collects diagnostics while reading sections of one file.
pub(crate) struct Checker<'a> {
    file: &'a IniFile,
    /// Every problem found so far.
    pub(crate) diags: Diagnostics,
}

impl<'a> Checker<'a> {
    /// A checker for `file`.
    pub(crate) fn new(file: &'a IniFile) -> Checker<'a> {
        Checker {
            file,
            diags: file.problems.clone(),
        }
    }

    /// Reports a problem with a section (at its header line).
    pub(crate) fn section_error(&mut self, s: &Section, message: impl Into<String>) {
        let d = self.file.diag(Some(s.line), Some(&s.name), None, message);
        self.diags.push(d);
    }

    /// Reports a problem with a key.
    fn entry_error(&mut self, s: &Section, e: &Entry, message: impl Into<String>) {
        let d = self
            .file
            .diag(Some(e.line), Some(&s.name), Some(&e.key), message);
        self.diags.push(d);
    }

    /// Reports a problem with `key` at its line, or at the section header when it is absent.
    pub(crate) fn key_error(&mut self, s: &Section, key: &str, message: impl Into<String>) {
        let line = Checker::line_of(s, key);
        let d = self
            .file
            .diag(Some(line), Some(&s.name), Some(key), message);
        self.diags.push(d);
    }

    /// Reports every key of `s` that is not in `known`.
    pub(crate) fn check_keys(&mut self, s: &Section, known: &[&str]) {
        for e in &s.entries {
            if !known.contains(&e.key.as_str()) {
                let hint = match known.iter().find(|k| k.eq_ignore_ascii_case(&e.key)) {
                    Some(k) => format!("unknown key (did you mean {k:?}? keys are case-sensitive)"),
                    None => format!("unknown key (known: {})", known.join(", ")),
                };
                self.entry_error(s, e, hint);
            }
        }
    }

    /// The value of `key` parsed by `parse`; `None` when absent or invalid (reported).
    pub(crate) fn value<T>(
        &mut self,
        s: &Section,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let e = s.entries.iter().find(|e| e.key == key)?;
        match parse(&e.value) {
            Ok(v) => Some(v),
            Err(msg) => {
                self.entry_error(s, e, msg);
                None
            }
        }
    }

    /// Like [`Checker::value`], and reports a missing key.
    pub(crate) fn required<T>(
        &mut self,
        s: &Section,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if !s.entries.iter().any(|e| e.key == key) {
            let d = self
                .file
                .diag(Some(s.line), Some(&s.name), Some(key), "missing (required)");
            self.diags.push(d);
            return None;
        }
        self.value(s, key, parse)
    }

    /// The line of `key` in `s`, or of the section header.
    fn line_of(s: &Section, key: &str) -> usize {
        s.entries
            .iter()
            .find(|e| e.key == key)
            .map_or(s.line, |e| e.line)
    }
}

/// Reads a `[user:NAME]` section (`name` is the part after `user:`).
pub(crate) fn user_section(c: &mut Checker<'_>, s: &Section, name: &str) -> Option<UserConfig> {
    c.check_keys(s, USER_KEYS);
    let name = match values::user_name(name) {
        Ok(n) => Some(n),
        Err(msg) => {
            c.section_error(s, msg);
            None
        }
    };
    let password = c.required(s, "password", values::text);
    let display_name = c.value(s, "display_name", values::text);
    let max_calls = c.value(s, "max_calls", values::max_calls);
    let calls = super::call_rules::user_call_rules(c, s);
    Some(UserConfig {
        name: name?,
        password: password?,
        display_name,
        max_calls,
        calls,
    })
}

fn server_section(c: &mut Checker<'_>, s: &Section, base_dir: &Path, server: &mut ServerConfig) {
    c.check_keys(s, SERVER_KEYS);
    if let Some(v) = c.value(s, "domain", values::host) {
        server.domain = v;
    }
    if let Some(v) = c.value(s, "aliases", |v| {
        v.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(values::host)
            .collect::<Result<Vec<_>, _>>()
    }) {
        server.aliases = v;
    }
    if let Some(v) = c.value(s, "listen", values::listen_list) {
        server.listen = v;
    }
    if let Some(v) = c.value(s, "data_dir", values::text) {
        server.data_dir = base_dir.join(v);
    }
    if let Some(v) = c.value(s, "admin", values::socket_addr) {
        server.admin = v;
    }
    if let Some(v) = c.value(s, "outgroup_prefix", values::dial_prefix) {
        server.outgroup_prefix = v;
    }
    if let Some(v) = c.value(s, "max_calls", values::max_calls) {
        server.max_calls = v;
    }
    if let Some(v) = c.value(s, "national_prefix", values::dial_prefix) {
        server.national_prefix = v;
    }
    if let Some(v) = c.value(s, "international_prefix", values::dial_prefix) {
        server.international_prefix = v;
    }
    if let Some(v) = c.value(s, "min_expires", |v| values::seconds(v, 1, 86_400)) {
        server.min_expires = v;
    }
    if let Some(v) = c.value(s, "max_expires", |v| values::seconds(v, 1, 604_800)) {
        server.max_expires = v;
    }
    if let Some(v) = c.value(s, "max_contacts_per_user", |v| values::number(v, 1, 1000)) {
        server.max_contacts_per_user = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = c.value(s, "nonce_lifetime", values::duration) {
        server.nonce_lifetime = v;
    }
    if let Some(v) = c.value(s, "completed_transactions_mb", |v| {
        values::number(v, 1, 4096)
    }) {
        server.completed_transactions_bytes = usize::try_from(v << 20).unwrap_or(usize::MAX);
    }
    if let Some(v) = c.value(s, "digest_algorithms", values::digest_algorithms) {
        server.digest_algorithms = Some(v);
    }
    if let Some(v) = c.value(s, "session_expires", values::session_interval) {
        server.session_expires = v;
    }
    if let Some(v) = c.value(s, "min_se", values::session_interval) {
        server.min_se = v;
    }
    if server.min_se > server.session_expires {
        let line = Checker::line_of(s, "session_expires");
        let d = c.file.diag(
            Some(line),
            Some(&s.name),
            Some("session_expires"),
            format!(
                "{}s is shorter than min_se ({}s)",
                server.session_expires, server.min_se
            ),
        );
        c.diags.push(d);
    }
    if server.min_expires > server.max_expires {
        let line = Checker::line_of(s, "max_expires");
        let d = c.file.diag(
            Some(line),
            Some(&s.name),
            Some("max_expires"),
            format!(
                "{} is shorter than min_expires ({})",
                server.max_expires, server.min_expires
            ),
        );
        c.diags.push(d);
    }
}

fn im_section(c: &mut Checker<'_>, s: &Section, im: &mut ImConfig) {
    c.check_keys(s, IM_KEYS);
    if let Some(v) = c.value(s, "offline_max_messages", |v| values::number(v, 0, 100_000)) {
        im.offline_max_messages = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = c.value(s, "offline_max_chars", |v| values::number(v, 1, 65_535)) {
        im.offline_max_chars = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = c.value(s, "offline_ttl", values::duration) {
        im.offline_ttl = v;
    }
    if let Some(v) = c.value(s, "rate_limit_per_minute", |v| {
        values::number(v, 0, 1_000_000)
    }) {
        im.rate_limit_per_minute = u32::try_from(v).unwrap_or(u32::MAX);
    }
}

fn media_section(c: &mut Checker<'_>, s: &Section, media: &mut MediaConfig) {
    c.check_keys(s, MEDIA_KEYS);
    if let Some(v) = c.value(s, "relay", values::media_relay) {
        media.relay = v;
    }
    if let Some(v) = c.value(s, "rtp_address", values::ip_addr) {
        media.rtp_address = v;
    }
    if let Some(v) = c.value(s, "public_address", values::public_address) {
        media.public_address = v;
    }
    if let Some(v) = c.value(s, "rtp_ports", values::port_range) {
        media.rtp_ports = v;
    }
    if let Some(v) = c.value(s, "rtp_timeout", values::duration) {
        media.rtp_timeout = v;
    }
    if let Some(v) = c.value(s, "hold_timeout", values::duration) {
        media.hold_timeout = v;
    }
    if let Some(v) = c.value(s, "realtime_priority", values::realtime_priority) {
        media.realtime_priority = v;
    }
    if let Some(v) = c.value(s, "io", values::media_io) {
        media.io = v;
    }
}

fn security_section(c: &mut Checker<'_>, s: &Section, sec: &mut SecurityConfig) {
    c.check_keys(s, SECURITY_KEYS);
    if let Some(v) = c.value(s, "ban_after", |v| values::number(v, 0, 10_000)) {
        sec.ban_after = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = c.value(s, "ban_window", values::duration) {
        sec.ban_window = v;
    }
    if let Some(v) = c.value(s, "ban_time", values::duration) {
        sec.ban_time = v;
    }
    if let Some(v) = c.value(s, "rate_limit", |v| values::number(v, 0, 1_000_000)) {
        sec.rate_limit = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = c.value(s, "ignore", values::ip_nets) {
        sec.ignore = v;
    }
}

/// Reads `[tls]`: both files or neither, each relative to `base_dir`; the files are read
/// and checked now (PEM, the key is the certificate's), so that `mss check-config` and a
/// start name `file:line` and the OS error of a file that will not do.
fn tls_section(c: &mut Checker<'_>, s: &Section, base_dir: &Path, tls: &mut TlsConfig) {
    c.check_keys(s, TLS_KEYS);
    if let Some(v) = c.value(s, "handshake_timeout", values::duration) {
        tls.handshake_timeout = v;
    }
    let certificate = c.value(s, "certificate", values::text);
    let private_key = c.value(s, "private_key", values::text);
    let (certificate, private_key) = match (certificate, private_key) {
        (Some(cert), Some(key)) => (base_dir.join(cert), base_dir.join(key)),
        (Some(_), None) => {
            c.key_error(
                s,
                "private_key",
                "missing (certificate needs its private key)",
            );
            return;
        }
        (None, Some(_)) => {
            c.key_error(
                s,
                "certificate",
                "missing (private_key needs its certificate)",
            );
            return;
        }
        (None, None) => return,
    };
    if let Err(e) = mss_transport::TlsIdentity::load(&certificate, &private_key) {
        let key = match e.file() {
            mss_transport::PemFile::Certificate => "certificate",
            mss_transport::PemFile::PrivateKey => "private_key",
        };
        c.key_error(s, key, e.to_string());
        return;
    }
    tls.files = Some(TlsFiles {
        certificate,
        private_key,
    });
}

/// A line with `transport = tls` needs a `tls:` listener: its address is the Via sent-by
/// and Contact of the line's REGISTERs (where the provider connects back).
fn tls_lines_need_a_listener(c: &mut Checker<'_>, file: &IniFile, config: &Config) {
    let has_listener = config
        .server
        .listen
        .iter()
        .any(|l| l.transport == SipTransport::Tls);
    if has_listener {
        return;
    }
    for s in &file.sections {
        let tls_line = s.name.starts_with("line:")
            && s.entries
                .iter()
                .any(|e| e.key == "transport" && e.value == "tls");
        if tls_line {
            c.key_error(
                s,
                "transport",
                "tls needs a tls: address in [server] listen (the Via and Contact of the \
                 line's REGISTERs, where the provider connects back)",
            );
        }
    }
}

/// Validates a parsed `mss.ini`. Relative `data_dir` values are taken from `base_dir` (the
/// folder of the file); `default_domain` is used when `[server]` has no `domain`.
pub(crate) fn config_from_ini(
    file: &IniFile,
    base_dir: &Path,
    default_domain: String,
) -> Result<Config, Diagnostics> {
    let mut c = Checker::new(file);
    let mut config = Config::embedded(default_domain);
    config.server.data_dir = base_dir.join("mss-data");
    let user_names: Vec<&str> = file
        .sections
        .iter()
        .filter_map(|s| s.name.strip_prefix("user:").map(str::trim))
        .collect();
    for s in &file.sections {
        match s.name.split_once(':') {
            None if s.name == "server" => server_section(&mut c, s, base_dir, &mut config.server),
            None if s.name == "im" => im_section(&mut c, s, &mut config.im),
            None if s.name == "security" => security_section(&mut c, s, &mut config.security),
            None if s.name == "media" => media_section(&mut c, s, &mut config.media),
            None if s.name == "tls" => tls_section(&mut c, s, base_dir, &mut config.tls),
            Some(("user", name)) => {
                if let Some(u) = user_section(&mut c, s, name.trim()) {
                    config.users.push(u);
                }
            }
            Some(("line", name)) => {
                if let Some(l) = line_section(&mut c, s, name.trim(), &user_names, base_dir) {
                    config.lines.push(l);
                }
            }
            Some(("group", name)) => {
                if let Some(g) = super::call_rules::group_section(&mut c, s, name.trim()) {
                    config.groups.push(g);
                }
            }
            _ => c.section_error(
                s,
                "unknown section (expected [server], [user:NAME], [line:NAME], [group:NAME], [im], \
                 [security], [media] or [tls])",
            ),
        }
    }
    super::call_rules::check_targets(&mut c, file, &config);
    tls_lines_need_a_listener(&mut c, file, &config);
    if c.diags.is_empty() {
        Ok(config)
    } else {
        c.diags.sort();
        Err(c.diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ini_file;
    use crate::config::model::{CallIdMode, SipTransport};
    use std::path::PathBuf;
    use std::time::Duration;

    const GOOD: &str = "\
[server]
domain = pbx.example.com          ; SIP domain
listen = udp:0.0.0.0:5060, tcp:0.0.0.0:5060
data_dir = ./mss-data
admin = 127.0.0.1:5080
outgroup_prefix = 9

[user:101]
password = s3cret
display_name = Alice

[user:102]
password = other

[line:provider1]                  ; an external line
registrar = sip.provider.example:5060
number = 2001
password = linepw
expires = 3600
owner = 101
call_id = auto

[im]
offline_max_messages = 10
offline_max_chars = 199
offline_ttl = 7d
";

    fn load(text: &str) -> Result<Config, String> {
        let f = ini_file::parse("mss.ini", text).map_err(|d| d.to_string())?;
        config_from_ini(&f, Path::new("/etc/mss"), "host.local".into()).map_err(|d| d.to_string())
    }

    #[test]
    fn good_file() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.server.domain, "pbx.example.com");
        assert_eq!(c.server.listen.len(), 2);
        assert_eq!(c.server.data_dir, PathBuf::from("/etc/mss/./mss-data"));
        assert_eq!(c.server.admin.port(), 5080);
        assert_eq!(c.users.len(), 2);
        assert_eq!(c.users[0].display_name.as_deref(), Some("Alice"));
        let l = &c.lines[0];
        assert_eq!(l.registrar_host, "sip.provider.example");
        assert_eq!(l.registrar_port, Some(5060));
        assert_eq!(l.username, "2001");
        assert_eq!(l.domain, "sip.provider.example");
        assert_eq!(l.owner.as_deref(), Some("101"));
        assert_eq!(l.transport, SipTransport::Udp);
        assert_eq!(c.im.offline_ttl, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn session_timer_keys_are_checked_with_their_line() {
        let c = load("[server]\nsession_expires = 10m\nmin_se = 120\n").unwrap();
        assert_eq!((c.server.session_expires, c.server.min_se), (600, 120));
        let c = load("[server]\n").unwrap();
        assert_eq!((c.server.session_expires, c.server.min_se), (1800, 90));
        let e = load("[server]\nmin_se = 60\nsession_expires = 2d\n").unwrap_err();
        assert_eq!(
            e,
            "mss.ini:2: [server] min_se: \"60\" is out of range (90s..=1d: RFC 4028 allows no session interval below 90s)\n\
             mss.ini:3: [server] session_expires: \"2d\" is out of range (90s..=1d: RFC 4028 allows no session interval below 90s)"
        );
        let e = load("[server]\nsession_expires = 100\nmin_se = 5m\n").unwrap_err();
        assert_eq!(
            e,
            "mss.ini:2: [server] session_expires: 100s is shorter than min_se (300s)"
        );
    }

    #[test]
    fn structural_and_value_errors_are_reported_together() {
        let e = load("[server]\ndomain = a.b\ndomain = c.d\nadmin = x\n").unwrap_err();
        assert_eq!(
            e,
            "mss.ini:3: [server] domain: duplicate key (first at line 2)\n\
             mss.ini:4: [server] admin: \"x\" is not an address of the form IP:PORT"
        );
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.server.domain, "host.local");
        assert_eq!(c.server.min_expires, 60);
        assert_eq!(c.server.max_expires, 3600);
        assert_eq!(c.server.max_contacts_per_user, 10);
        assert_eq!(c.server.nonce_lifetime, Duration::from_secs(300));
        assert_eq!(c.server.completed_transactions_bytes, 16 << 20);
        assert_eq!(c.server.outgroup_prefix, "9");
        assert_eq!(c.im, ImConfig::default());
        assert_eq!(c.server.data_dir, PathBuf::from("/etc/mss/mss-data"));
        assert!(c.users.is_empty() && c.lines.is_empty());
    }

    #[test]
    fn completed_transactions_mb_is_mebibytes_from_1() {
        let c = load("[server]\ncompleted_transactions_mb = 24\n").unwrap();
        assert_eq!(c.server.completed_transactions_bytes, 24 << 20);
        assert_eq!(
            load("[server]\ncompleted_transactions_mb = 0\n").unwrap_err(),
            "mss.ini:2: [server] completed_transactions_mb: \"0\" is out of range (1..=4096)"
        );
    }

    #[test]
    fn bad_expires_names_file_line_section_and_key() {
        let text = GOOD.replace("expires = 3600", "expires = abc");
        let e = load(&text).unwrap_err();
        assert_eq!(
            e,
            "mss.ini:19: [line:provider1] expires: \"abc\" is not a number of seconds"
        );
    }

    #[test]
    fn all_errors_are_collected_in_line_order() {
        let text = "\
[server]
domain = bad domain
listen = udp:0.0.0.0:5060, sctp:0.0.0.0:5060
admin = localhost
Domain = x
min_expires = 100
max_expires = 50
nonce_lifetime = 5w
[user:a b]
password = x
[user:103]
display_name = no password
[line:l1]
number = 1
owner = 999
call_id = sometimes
transport = tls
[line:l2]
registrar = host:99999
password = p
number = 2
[im]
offline_ttl = 0s
offline_max_chars = many
[extra]
";
        let e = load(text).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        let expect = [
            "mss.ini:2: [server] domain: \"bad domain\" is not a host name or IP address",
            "mss.ini:3: [server] listen: \"sctp\" is not a transport (udp, tcp, tls, ws, wss)",
            "mss.ini:4: [server] admin: \"localhost\" is not an address of the form IP:PORT",
            "mss.ini:5: [server] Domain: unknown key (did you mean \"domain\"? keys are case-sensitive)",
            "mss.ini:7: [server] max_expires: 50 is shorter than min_expires (100)",
            "mss.ini:8: [server] nonce_lifetime: \"5w\" is not a duration (examples: 7d, 12h, 30m, 45s)",
            "mss.ini:9: [user:a b] \"a b\" is not a valid SIP user name (letters, digits and -_.!~*'()&=+$,;?/)",
            "mss.ini:11: [user:103] password: missing (required)",
            "mss.ini:13: [line:l1] registrar: missing (required)",
            "mss.ini:13: [line:l1] password: missing (required)",
            "mss.ini:15: [line:l1] owner: \"999\" is not a configured user",
            "mss.ini:16: [line:l1] call_id: \"sometimes\" is not one of auto, same, fresh",
            "mss.ini:19: [line:l2] registrar: \"99999\" is not a port number (1..=65535)",
            "mss.ini:23: [im] offline_ttl: \"0s\" must be longer than zero",
            "mss.ini:24: [im] offline_max_chars: \"many\" is not a whole number",
            "mss.ini:25: [extra] unknown section (expected [server], [user:NAME], [line:NAME], [group:NAME], [im], [security], [media] or [tls])",
        ];
        for (i, want) in expect.iter().enumerate() {
            assert_eq!(lines.get(i).copied(), Some(*want), "item {i} of:\n{e}");
        }
        assert_eq!(lines.len(), expect.len(), "{e}");
    }

    #[test]
    fn security_section_values_and_errors() {
        let c = load("[security]\nban_after = 5\nban_window = 10m\nban_time = 1h\nrate_limit = 0\nignore = 10.0.0.0/8, 2001:db8::/32, 192.0.2.1\n").unwrap();
        assert_eq!(c.security.ban_after, 5);
        assert_eq!(c.security.ban_window, Duration::from_secs(600));
        assert_eq!(c.security.ban_time, Duration::from_secs(3600));
        assert_eq!(c.security.rate_limit, 0);
        let ignore: Vec<String> = c.security.ignore.iter().map(ToString::to_string).collect();
        assert_eq!(ignore, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]);
        let none = load("[security]\nignore = none\n").unwrap();
        assert!(none.security.ignore.is_empty());
        let defaults = load("").unwrap().security;
        assert_eq!(defaults, SecurityConfig::default());
        assert_eq!((defaults.ban_after, defaults.rate_limit), (10, 100));
        let e = load("[security]\nban_after = many\nban_window = 0s\nban_time = 5w\nrate_limit = -1\nignore = 10.0.0.0/33, pbx\nban_for = 1h\n").unwrap_err();
        assert_eq!(
            e,
            "mss.ini:2: [security] ban_after: \"many\" is not a whole number\n\
             mss.ini:3: [security] ban_window: \"0s\" must be longer than zero\n\
             mss.ini:4: [security] ban_time: \"5w\" is not a duration (examples: 7d, 12h, 30m, 45s)\n\
             mss.ini:5: [security] rate_limit: \"-1\" is not a whole number\n\
             mss.ini:6: [security] ignore: \"10.0.0.0/33\" has a prefix length outside 0..=32\n\
             mss.ini:7: [security] ban_for: unknown key (known: ban_after, ban_window, ban_time, rate_limit, ignore)"
        );
        let e = load("[security]\nignore = 10.0.0.1, , ::1\n").unwrap_err();
        assert!(
            e.contains("has an empty item (write none for an empty list)"),
            "{e}"
        );
    }

    #[test]
    fn call_limits_and_media() {
        let c = load("").unwrap();
        assert_eq!(c.server.max_calls, 1000);
        assert_eq!(c.media, MediaConfig::default());
        let c = load(
            "[server]\nmax_calls = 20\n[user:101]\npassword = x\nmax_calls = 2\n[user:102]\npassword = y\n[media]\nrelay = never\n",
        )
        .unwrap();
        assert_eq!(c.server.max_calls, 20);
        assert_eq!(c.users[0].max_calls, Some(2));
        assert_eq!(c.users[1].max_calls, None);
        let e = load(
            "[server]\nmax_calls = 0\n[user:101]\npassword = x\nmax_calls = lots\n[media]\nrelay = sometimes\nrtp_ports = 20001-20002\nrtp_address = any\npublic_address = 0.0.0.0\nrtp_timeout = 0\nhold_timeout = 2x\nports = 1\nrealtime_priority = 100\nio = kqueue\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "mss.ini:2: [server] max_calls: \"0\" is out of range (1..=4294967295)\n\
             mss.ini:5: [user:101] max_calls: \"lots\" is not a whole number\n\
             mss.ini:7: [media] relay: \"sometimes\" is not one of always, never\n\
             mss.ini:8: [media] rtp_ports: \"20001-20002\": the range 20001-20002 holds no RTP/RTCP pair (an even port and the next)\n\
             mss.ini:9: [media] rtp_address: \"any\" is not an IP address\n\
             mss.ini:10: [media] public_address: \"0.0.0.0\" is not an address a phone can send RTP to\n\
             mss.ini:11: [media] rtp_timeout: \"0\" must be longer than zero\n\
             mss.ini:12: [media] hold_timeout: \"2x\" is not a duration (examples: 7d, 12h, 30m, 45s)\n\
             mss.ini:13: [media] ports: unknown key (known: relay, rtp_address, public_address, rtp_ports, rtp_timeout, hold_timeout, realtime_priority, io)\n\
             mss.ini:14: [media] realtime_priority: \"100\" is out of range (0..=99); auto, 0 (never) or 1..=99\n\
             mss.ini:15: [media] io: \"kqueue\" is not one of uring, epoll"
        );
        let c = load(
            "[media]\nrelay = always\nrtp_address = 192.0.2.1\npublic_address = 203.0.113.5\nrtp_ports = 30000-30099\nrtp_timeout = 30s\nhold_timeout = 1h\nrealtime_priority = 20\nio = epoll\n",
        )
        .unwrap();
        assert_eq!(c.media.io, mss_media::io::ReceiveMode::Batched);
        assert_eq!(c.media.relay, crate::config::MediaRelay::Always);
        assert_eq!(c.media.realtime_priority, Some(20));
        assert_eq!(load("").unwrap().media.realtime_priority, None, "auto");
        for (v, want) in [
            ("auto", None),
            ("AUTO", None),
            ("0", Some(0)),
            ("99", Some(99)),
        ] {
            let c = load(&format!("[media]\nrealtime_priority = {v}\n")).unwrap();
            assert_eq!(c.media.realtime_priority, want, "{v}");
        }
        assert_eq!(
            c.media.rtp_address,
            "192.0.2.1".parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!(c.media.public_address, Some("203.0.113.5".parse().unwrap()));
        assert_eq!(c.media.rtp_ports.pairs(), 50);
        assert_eq!(c.media.rtp_timeout, std::time::Duration::from_secs(30));
        assert_eq!(c.media.hold_timeout, std::time::Duration::from_secs(3600));
    }

    #[test]
    fn owner_must_be_a_configured_user() {
        let text = GOOD.replace("owner = 101", "owner = 555");
        let e = load(&text).unwrap_err();
        assert_eq!(
            e,
            "mss.ini:20: [line:provider1] owner: \"555\" is not a configured user"
        );
    }

    #[test]
    fn line_defaults_and_overrides() {
        let text = "[line:x]\nregistrar = [2001:db8::5]\nnumber = 77\nusername = auth77\npassword = p\ndomain = voip.example\ntransport = tcp\ncall_id = fresh\n";
        let c = load(text).unwrap();
        let l = &c.lines[0];
        assert_eq!(
            (l.registrar_host.as_str(), l.registrar_port),
            ("2001:db8::5", None)
        );
        assert_eq!(l.username, "auth77");
        assert_eq!(l.domain, "voip.example");
        assert_eq!(l.transport, SipTransport::Tcp);
        assert_eq!(l.call_id, CallIdMode::Fresh);
        assert_eq!(l.expires, 3600);
        assert_eq!(l.owner, None);
    }

    /// A certificate and key pair written into `dir` (PEM), and another key.
    fn pem_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let c = rcgen::generate_simple_self_signed(vec!["pbx.example.com".into()]).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let wrong = dir.join("other-key.pem");
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
        std::fs::write(&wrong, other.serialize_pem()).unwrap();
        (cert, key, wrong)
    }

    fn load_in(dir: &Path, text: &str) -> Result<Config, String> {
        let f = ini_file::parse("mss.ini", text).map_err(|d| d.to_string())?;
        config_from_ini(&f, dir, "host.local".into()).map_err(|d| d.to_string())
    }

    #[test]
    fn a_tls_line_needs_a_tls_listener() {
        let line = "[line:p]\nregistrar = 127.0.0.1\nnumber = 1\npassword = p\ntransport = tls\n";
        let e = load(&format!("[server]\nlisten = udp:0.0.0.0:5060\n{line}")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mss.ini:7: [line:p] transport: tls needs a tls: address in [server] listen (the Via \
             and Contact of the line's REGISTERs, where the provider connects back)"
        );
        let c = load(&format!(
            "[server]\nlisten = udp:0.0.0.0:5060, tls:0.0.0.0:5061\n{line}"
        ))
        .unwrap();
        assert_eq!(c.lines[0].transport, SipTransport::Tls);
        // The embedded defaults listen on tls:0.0.0.0:5061.
        assert!(load(line).is_ok());
    }

    #[test]
    fn tls_section_files_relative_to_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        pem_files(dir.path());
        let c = load_in(
            dir.path(),
            "[server]\nlisten = tls:0.0.0.0:6060\n[tls]\ncertificate = cert.pem\nprivate_key = key.pem\nhandshake_timeout = 3s\n",
        )
        .unwrap();
        let files = c.tls.files.unwrap();
        assert_eq!(files.certificate, dir.path().join("cert.pem"));
        assert_eq!(files.private_key, dir.path().join("key.pem"));
        assert_eq!(c.tls.handshake_timeout, Duration::from_secs(3));
        assert!(c.server.uses_certificate());
        let defaults = load("").unwrap();
        assert_eq!(defaults.tls, TlsConfig::default());
        // The defaults listen on TLS 5061 and WSS 5062 as well (with the self-signed
        // certificate).
        assert_eq!(defaults.server.listen.len(), 4);
        assert!(defaults.server.uses_certificate());
        assert_eq!(defaults.server.listen[2].addr.port(), 5061);
        assert_eq!(defaults.server.listen[3].to_string(), "wss:0.0.0.0:5062");
    }

    #[test]
    fn tls_file_errors_name_file_line_key_and_os_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, wrong) = pem_files(dir.path());
        let e = load_in(
            dir.path(),
            "[tls]\ncertificate = missing.pem\nprivate_key = key.pem\n",
        )
        .unwrap_err();
        let missing = dir.path().join("missing.pem");
        assert_eq!(
            e,
            format!(
                "mss.ini:2: [tls] certificate: cannot read the certificate {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let e = load_in(
            dir.path(),
            &format!(
                "[tls]\ncertificate = cert.pem\nprivate_key = {}\n",
                wrong.display()
            ),
        )
        .unwrap_err();
        assert!(
            e.starts_with("mss.ini:3: [tls] private_key: the private key "),
            "{e}"
        );
        assert!(e.contains("does not belong to the certificate"), "{e}");
        let e = load_in(
            dir.path(),
            "[tls]\ncertificate = key.pem\nprivate_key = key.pem\n",
        )
        .unwrap_err();
        assert!(e.starts_with("mss.ini:2: [tls] certificate: "), "{e}");
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = load_in(dir.path(), "[tls]\ncertificate = cert.pem\ncert = x\n").unwrap_err();
        assert_eq!(
            e,
            "mss.ini:1: [tls] private_key: missing (certificate needs its private key)\n\
             mss.ini:3: [tls] cert: unknown key (known: certificate, private_key, handshake_timeout)"
        );
    }
}
