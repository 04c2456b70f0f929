//! A `[line:NAME]` section of `mss.ini`: an external line, its keys and their checks.

use std::path::Path;
use std::time::Duration;

use mss_services::lines::{BACKOFF_BASE, BACKOFF_CEILING, BACKOFF_FLOOR, BACKOFF_MAX};

use super::ini_file::Section;
use super::model::{CallIdMode, LineConfig, SipTransport};
use super::validate::Checker;
use super::values;

/// Keys of `[line:NAME]`.
pub(crate) const LINE_KEYS: &[&str] = &[
    "registrar",
    "transport",
    "number",
    "username",
    "password",
    "domain",
    "expires",
    "owner",
    "call_id",
    "retry_min",
    "retry_max",
    "outgoing",
    "tls_ca_file",
    "tls_server_name",
];

/// A `retry_min` / `retry_max` value: a duration from 1 s to 1 day.
fn retry_delay(v: &str) -> Result<Duration, String> {
    let d = values::duration(v)?;
    if d < BACKOFF_FLOOR {
        return Err(format!(
            "{v:?} is shorter than {}",
            values::duration_text(BACKOFF_FLOOR)
        ));
    }
    if d > BACKOFF_CEILING {
        return Err(format!(
            "{v:?} is longer than {}",
            values::duration_text(BACKOFF_CEILING)
        ));
    }
    Ok(d)
}

/// Reads a `[line:NAME]` section (`name` is the part after `line:`); `user_names` are the
/// configured users, one of which `owner` must name; `tls_ca_file` is relative to
/// `base_dir` (the configuration file's folder).
pub(crate) fn line_section(
    c: &mut Checker<'_>,
    s: &Section,
    name: &str,
    user_names: &[&str],
    base_dir: &Path,
) -> Option<LineConfig> {
    c.check_keys(s, LINE_KEYS);
    let name = match values::line_name(name) {
        Ok(n) => Some(n),
        Err(msg) => {
            c.section_error(s, msg);
            None
        }
    };
    let registrar = c.required(s, "registrar", values::host_opt_port);
    let transport = c
        .value(s, "transport", values::transport)
        .unwrap_or(SipTransport::Udp);
    let number = c.required(s, "number", values::user_name);
    let username = c.value(s, "username", values::text);
    let password = c.required(s, "password", values::text);
    let domain = c.value(s, "domain", values::host);
    let expires = c
        .value(s, "expires", |v| values::seconds(v, 1, 604_800))
        .unwrap_or(3600);
    let owner = c.value(s, "owner", |v| {
        if user_names.contains(&v) {
            Ok(v.to_string())
        } else {
            Err(format!("{v:?} is not a configured user"))
        }
    });
    let call_id = c
        .value(s, "call_id", values::call_id_mode)
        .unwrap_or(CallIdMode::Auto);
    let retry_min = c.value(s, "retry_min", retry_delay);
    let retry_max = c.value(s, "retry_max", retry_delay);
    let retry = retry_schedule(c, s, retry_min, retry_max);
    let outgoing = c.value(s, "outgoing", values::boolean).unwrap_or(true);
    let (tls_ca_file, tls_server_name) = tls_keys(c, s, transport, base_dir);
    let (registrar_host, registrar_port) = registrar?;
    let number = number?;
    let (retry_min, retry_max) = retry?;
    Some(LineConfig {
        name: name?,
        username: username.unwrap_or_else(|| number.clone()),
        domain: domain.unwrap_or_else(|| registrar_host.clone()),
        registrar_host,
        registrar_port,
        transport,
        tls_ca_file,
        tls_server_name,
        number,
        password: password?,
        expires,
        owner,
        call_id,
        retry_min,
        retry_max,
        outgoing,
    })
}

/// `tls_ca_file` (read and checked now: PEM with at least one CA certificate) and
/// `tls_server_name`, both only for `transport = tls`. A TLS line without `tls_ca_file`
/// trusts the system roots, which must then be there.
fn tls_keys(
    c: &mut Checker<'_>,
    s: &Section,
    transport: SipTransport,
    base_dir: &Path,
) -> (Option<std::path::PathBuf>, Option<String>) {
    let ca_file = c
        .value(s, "tls_ca_file", values::text)
        .map(|f| base_dir.join(f));
    let server_name = c.value(s, "tls_server_name", values::host);
    if transport != SipTransport::Tls {
        for key in ["tls_ca_file", "tls_server_name"] {
            if s.entries.iter().any(|e| e.key == key) {
                c.key_error(
                    s,
                    key,
                    format!("only for transport = tls (not {transport})"),
                );
            }
        }
        return (None, None);
    }
    let roots = match &ca_file {
        Some(path) => mss_transport::TlsClient::with_ca_file(path).map(|_| ()),
        None => mss_transport::TlsClient::system().map(|_| ()),
    };
    if let Err(e) = roots {
        let key = if ca_file.is_some() {
            "tls_ca_file"
        } else {
            "transport"
        };
        c.key_error(s, key, e.to_string());
    }
    (ca_file, server_name)
}

/// `retry_min` and `retry_max`, each given or its default, when `retry_max` is not shorter
/// than `retry_min`; else the error goes to the line of `retry_max`, or of `retry_min` when
/// only that one is given, and the result is `None`. A value that was given but invalid
/// (`None` here, already reported) counts as its default.
fn retry_schedule(
    c: &mut Checker<'_>,
    s: &Section,
    min: Option<Duration>,
    max: Option<Duration>,
) -> Option<(Duration, Duration)> {
    let (lo, hi) = (min.unwrap_or(BACKOFF_BASE), max.unwrap_or(BACKOFF_MAX));
    if hi >= lo {
        return Some((lo, hi));
    }
    let given = |key: &str| s.entries.iter().any(|e| e.key == key);
    let text = values::duration_text;
    let (key, message) = if given("retry_max") {
        let min_text = if given("retry_min") {
            text(lo)
        } else {
            format!("default {}", text(lo))
        };
        (
            "retry_max",
            format!("{} is shorter than retry_min ({min_text})", text(hi)),
        )
    } else {
        (
            "retry_min",
            format!(
                "{} is longer than retry_max (default {}); set retry_max too",
                text(lo),
                text(hi)
            ),
        )
    };
    c.key_error(s, key, message);
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::ini_file;
    use crate::config::validate::config_from_ini;
    use crate::config::Config;

    fn load(extra: &str) -> Result<Config, String> {
        load_in(Path::new("/etc/mss"), extra)
    }

    fn load_in(dir: &Path, extra: &str) -> Result<Config, String> {
        let text = format!("[line:p1]\nregistrar = 127.0.0.1\nnumber = 1\npassword = p\n{extra}");
        let f = ini_file::parse("mss.ini", &text).map_err(|d| d.to_string())?;
        config_from_ini(&f, dir, "host.local".into()).map_err(|d| d.to_string())
    }

    #[test]
    fn tls_lines_take_a_ca_file_relative_to_the_config_folder_and_a_server_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
        std::fs::write(dir.path().join("provider-ca.pem"), ca.cert.pem()).unwrap();
        let c = load_in(
            dir.path(),
            "transport = tls\ntls_ca_file = provider-ca.pem\ntls_server_name = sip.provider.test\n",
        )
        .unwrap();
        let l = &c.lines[0];
        assert_eq!(l.transport, SipTransport::Tls);
        assert_eq!(l.tls_ca_file, Some(dir.path().join("provider-ca.pem")));
        assert_eq!(l.tls_server_name.as_deref(), Some("sip.provider.test"));
        // Defaults: the system roots, the registrar's host.
        let c = load("").unwrap();
        assert_eq!(
            (&c.lines[0].tls_ca_file, &c.lines[0].tls_server_name),
            (&None, &None)
        );
    }

    #[test]
    fn tls_line_keys_are_checked_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").unwrap();
        let e = load_in(dir.path(), "transport = tls\ntls_ca_file = missing.pem\n").unwrap_err();
        assert!(
            e.starts_with("mss.ini:6: [line:p1] tls_ca_file: cannot read the CA file ")
                && e.ends_with("missing.pem: No such file or directory (os error 2)"),
            "{e}"
        );
        let e = load_in(dir.path(), "transport = tls\ntls_ca_file = junk.pem\n").unwrap_err();
        assert!(
            e.starts_with("mss.ini:6: [line:p1] tls_ca_file: the CA file "),
            "{e}"
        );
        assert!(e.ends_with("junk.pem has no CERTIFICATE block"), "{e}");
        assert_eq!(
            load("transport = tls\ntls_server_name = not a name\n").unwrap_err(),
            "mss.ini:6: [line:p1] tls_server_name: \"not a name\" is not a host name or IP address"
        );
        assert_eq!(
            load("tls_ca_file = ca.pem\ntls_server_name = x.test\n").unwrap_err(),
            "mss.ini:5: [line:p1] tls_ca_file: only for transport = tls (not udp)\n\
             mss.ini:6: [line:p1] tls_server_name: only for transport = tls (not udp)"
        );
        assert_eq!(
            load("transport = wss\n").unwrap_err(),
            "mss.ini:5: [line:p1] transport: transport \"wss\" is not supported for lines (udp, tcp, tls)"
        );
    }

    #[test]
    fn retry_keys_default_to_30s_and_30m() {
        let c = load("").unwrap();
        let l = &c.lines[0];
        assert_eq!(l.retry_min, Duration::from_secs(30));
        assert_eq!(l.retry_max, Duration::from_secs(1800));
        let c = load("retry_min = 2s\nretry_max = 1h\n").unwrap();
        let l = &c.lines[0];
        assert_eq!(
            (l.retry_min, l.retry_max),
            (Duration::from_secs(2), Duration::from_secs(3600))
        );
        let c = load("retry_min = 1m\nretry_max = 1m\n").unwrap();
        assert_eq!(c.lines[0].retry_max, Duration::from_secs(60));
        let c = load("retry_max = 45s\n").unwrap();
        assert_eq!(c.lines[0].retry_min, Duration::from_secs(30));
    }

    #[test]
    fn outgoing_defaults_to_true() {
        assert!(load("").unwrap().lines[0].outgoing);
        assert!(!load("outgoing = false\n").unwrap().lines[0].outgoing);
        assert!(load("outgoing = true\n").unwrap().lines[0].outgoing);
        assert_eq!(
            load("outgoing = maybe\n").unwrap_err(),
            "mss.ini:5: [line:p1] outgoing: \"maybe\" is not true or false"
        );
    }

    #[test]
    fn retry_keys_are_checked_with_file_and_line() {
        let cases = [
            (
                "retry_min = 0s\n",
                "mss.ini:5: [line:p1] retry_min: \"0s\" must be longer than zero",
            ),
            (
                "retry_min = soon\n",
                "mss.ini:5: [line:p1] retry_min: \"soon\" is not a duration (examples: 7d, 12h, 30m, 45s)",
            ),
            (
                "retry_max = 2d\n",
                "mss.ini:5: [line:p1] retry_max: \"2d\" is longer than 1d",
            ),
            (
                "retry_min = 5m\nretry_max = 1m\n",
                "mss.ini:6: [line:p1] retry_max: 1m is shorter than retry_min (5m)",
            ),
            (
                "retry_max = 10s\n",
                "mss.ini:5: [line:p1] retry_max: 10s is shorter than retry_min (default 30s)",
            ),
            (
                "retry_min = 1h\n",
                "mss.ini:5: [line:p1] retry_min: 1h is longer than retry_max (default 30m); set retry_max too",
            ),
        ];
        for (extra, want) in cases {
            assert_eq!(load(extra).unwrap_err(), want, "{extra}");
        }
    }
}
