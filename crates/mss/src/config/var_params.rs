//! `mss_var_param.ini`, the compatibility file for variable parameters, and the Call-ID rule
//! of external lines that depends on it (DESIGN.md §2).

use super::error::Diagnostics;
use super::ini_file::IniFile;
use super::model::{CallIdMode, LineConfig};
use super::validate::Checker;
use super::values;

/// Keys of `[sip]` in `mss_var_param.ini`.
pub(crate) const SIP_KEYS: &[&str] = &["gVarSipRegSameDialog"];

/// What `mss_var_param.ini` says. Every field is `None` when the key (or the file) is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VarParams {
    /// `[sip] gVarSipRegSameDialog`: `1` = every line re-registers within one dialog,
    /// `0` = every REGISTER gets a fresh Call-ID; unset = each line's `call_id` key decides.
    pub sip_reg_same_dialog: Option<bool>,
}

/// The Call-ID mode a line actually follows.
///
/// The rule of DESIGN.md §2:
/// - `gVarSipRegSameDialog = 1` → [`CallIdMode::Same`] for every line: same Call-ID and
///   CSeq + 1 on every refresh (RFC 3261 §10.2);
/// - `gVarSipRegSameDialog = 0` → [`CallIdMode::Fresh`] for every line: a fresh Call-ID and
///   From tag for every REGISTER;
/// - not set → the line's own `call_id` key (default [`CallIdMode::Auto`]: the RFC behaviour
///   first, switching to fresh when the registrar complains about CSeq/ordering).
pub fn effective_call_id_mode(line: &LineConfig, var: &VarParams) -> CallIdMode {
    match var.sip_reg_same_dialog {
        Some(true) => CallIdMode::Same,
        Some(false) => CallIdMode::Fresh,
        None => line.call_id,
    }
}

/// Validates a parsed `mss_var_param.ini`.
pub(crate) fn var_params_from_ini(file: &IniFile) -> Result<VarParams, Diagnostics> {
    let mut c = Checker::new(file);
    let mut var = VarParams::default();
    for s in &file.sections {
        if s.name == "sip" {
            c.check_keys(s, SIP_KEYS);
            var.sip_reg_same_dialog = c.value(s, "gVarSipRegSameDialog", values::flag);
        } else {
            c.section_error(s, "unknown section (expected [sip])");
        }
    }
    if c.diags.is_empty() {
        Ok(var)
    } else {
        c.diags.sort();
        Err(c.diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ini_file;
    use crate::config::model::SipTransport;

    fn parse(text: &str) -> Result<VarParams, String> {
        let f = ini_file::parse("mss_var_param.ini", text).map_err(|d| d.to_string())?;
        var_params_from_ini(&f).map_err(|d| d.to_string())
    }

    fn line(mode: CallIdMode) -> LineConfig {
        LineConfig {
            name: "l".into(),
            registrar_host: "r".into(),
            registrar_port: Some(5060),
            transport: SipTransport::Udp,
            tls_ca_file: None,
            tls_server_name: None,
            number: "1".into(),
            username: "1".into(),
            password: "p".into(),
            domain: "r".into(),
            expires: 3600,
            owner: None,
            call_id: mode,
            retry_min: std::time::Duration::from_secs(30),
            retry_max: std::time::Duration::from_secs(1800),
            outgoing: true,
        }
    }

    #[test]
    fn reads_the_flag() {
        let on = parse("[sip]\ngVarSipRegSameDialog = 1\n").unwrap();
        assert_eq!(on.sip_reg_same_dialog, Some(true));
        let off = parse("[sip]\ngVarSipRegSameDialog = 0\n").unwrap();
        assert_eq!(off.sip_reg_same_dialog, Some(false));
        assert_eq!(parse("[sip]\n").unwrap(), VarParams::default());
        assert_eq!(parse("").unwrap(), VarParams::default());
    }

    #[test]
    fn refuses_bad_values_keys_and_sections() {
        let e = parse("[sip]\ngVarSipRegSameDialog = yes\ngvarsipregsamedialog = 1\n[x]\n")
            .unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(
            lines,
            [
                "mss_var_param.ini:2: [sip] gVarSipRegSameDialog: \"yes\" is not 0 or 1",
                "mss_var_param.ini:3: [sip] gvarsipregsamedialog: unknown key (did you mean \"gVarSipRegSameDialog\"? keys are case-sensitive)",
                "mss_var_param.ini:4: [x] unknown section (expected [sip])",
            ]
        );
    }

    #[test]
    fn effective_mode_follows_the_rule() {
        let unset = VarParams::default();
        let same = VarParams {
            sip_reg_same_dialog: Some(true),
        };
        let fresh = VarParams {
            sip_reg_same_dialog: Some(false),
        };
        for mode in [CallIdMode::Auto, CallIdMode::Same, CallIdMode::Fresh] {
            assert_eq!(effective_call_id_mode(&line(mode), &unset), mode);
            assert_eq!(effective_call_id_mode(&line(mode), &same), CallIdMode::Same);
            assert_eq!(
                effective_call_id_mode(&line(mode), &fresh),
                CallIdMode::Fresh
            );
        }
    }
}
