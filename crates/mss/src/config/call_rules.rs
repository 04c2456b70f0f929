//! The call services' keys (DESIGN §8): a user's `call_level`, forwards and
//! `no_answer_timeout`, `[group:NAME]` sections, and the check that every forward target
//! and group member names something that exists.

use std::time::Duration;

use mss_core::{CallLevel, GroupStrategy};

use super::ini_file::{IniFile, Section};
use super::model::{Config, GroupConfig, UserCallRules};
use super::validate::Checker;
use super::values;

/// The forward keys, whose values must name a user, a group or `outgroup_prefix` + number.
const FORWARD_KEYS: [&str; 4] = [
    "forward_always",
    "forward_busy",
    "forward_no_answer",
    "forward_unreachable",
];

/// Keys of `[group:NAME]`.
pub(crate) const GROUP_KEYS: &[&str] = &["members", "strategy", "ring_timeout"];

/// `call_level`.
fn call_level(v: &str) -> Result<CallLevel, String> {
    match v {
        "internal" => Ok(CallLevel::Internal),
        "national" => Ok(CallLevel::National),
        "international" => Ok(CallLevel::International),
        _ => Err(format!(
            "{v:?} is not one of internal, national, international"
        )),
    }
}

/// `strategy`.
fn strategy(v: &str) -> Result<GroupStrategy, String> {
    match v {
        "ring_all" => Ok(GroupStrategy::RingAll),
        "linear" => Ok(GroupStrategy::Linear),
        "circular" => Ok(GroupStrategy::Circular),
        _ => Err(format!("{v:?} is not one of ring_all, linear, circular")),
    }
}

/// A ring time: from 1 s to 10 min.
fn ring_time(v: &str) -> Result<Duration, String> {
    let d = values::duration(v)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(600) {
        return Err(format!("{v:?} is not between 1s and 10m"));
    }
    Ok(d)
}

/// A forward target as written (checked against users and groups once every section is
/// read, [`check_targets`]).
fn target(v: &str) -> Result<String, String> {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{v:?} is not a user, group or number"));
    }
    Ok(v.to_owned())
}

/// A user's call rules from its section.
pub(crate) fn user_call_rules(c: &mut Checker<'_>, s: &Section) -> UserCallRules {
    UserCallRules {
        call_level: c.value(s, "call_level", call_level).unwrap_or_default(),
        forward_always: c.value(s, "forward_always", target),
        forward_busy: c.value(s, "forward_busy", target),
        forward_no_answer: c.value(s, "forward_no_answer", target),
        no_answer_timeout: c.value(s, "no_answer_timeout", ring_time),
        forward_unreachable: c.value(s, "forward_unreachable", target),
    }
}

/// Reads a `[group:NAME]` section (members are checked by [`check_targets`]).
pub(crate) fn group_section(c: &mut Checker<'_>, s: &Section, name: &str) -> Option<GroupConfig> {
    c.check_keys(s, GROUP_KEYS);
    let name = match values::user_name(name) {
        Ok(n) => Some(n),
        Err(msg) => {
            c.section_error(s, msg);
            None
        }
    };
    let members = c.required(s, "members", |v| {
        let list: Vec<String> = v
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            Err("must name at least one user".to_owned())
        } else {
            Ok(list)
        }
    });
    let strategy = c.value(s, "strategy", strategy).unwrap_or_default();
    let ring_timeout = c
        .value(s, "ring_timeout", ring_time)
        .unwrap_or(mss_core::DEFAULT_NO_ANSWER_TIMEOUT);
    Some(GroupConfig {
        name: name?,
        members: members?,
        strategy,
        ring_timeout,
    })
}

/// Cross-references once every section is read: a group's name is no user's, its members
/// are users, and every forward target is a user, a group or `outgroup_prefix` + digits;
/// each problem at the line of its key.
pub(crate) fn check_targets(c: &mut Checker<'_>, file: &IniFile, config: &Config) {
    let is_user = |n: &str| config.users.iter().any(|u| u.name == n);
    let is_group = |n: &str| config.groups.iter().any(|g| g.name == n);
    let prefix = config.server.outgroup_prefix.as_str();
    let is_number = |n: &str| n.strip_prefix(prefix).is_some_and(mss_core::is_dialable);
    for s in &file.sections {
        let Some((kind, name)) = s.name.split_once(':') else {
            continue;
        };
        let name = name.trim();
        match kind {
            "user" => {
                for key in FORWARD_KEYS {
                    let Some(e) = s.entries.iter().find(|e| e.key == key) else {
                        continue;
                    };
                    let v = e.value.as_str();
                    if v == name {
                        c.key_error(s, key, format!("{v:?} forwards the user to itself"));
                    } else if !(is_user(v) || is_group(v) || is_number(v)) {
                        c.key_error(
                            s,
                            key,
                            format!(
                                "{v:?} is not a configured user or group, nor {prefix:?} and a number"
                            ),
                        );
                    }
                }
            }
            "group" => {
                if is_user(name) {
                    c.section_error(s, format!("{name:?} is also a user's name"));
                }
                let Some(e) = s.entries.iter().find(|e| e.key == "members") else {
                    continue;
                };
                for m in e.value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    if !is_user(m) {
                        c.key_error(s, "members", format!("{m:?} is not a configured user"));
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::ini_file;
    use super::super::validate::config_from_ini;
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let f = ini_file::parse("mss.ini", text).map_err(|d| d.to_string())?;
        config_from_ini(&f, Path::new("."), "pbx.test".into()).map_err(|d| d.to_string())
    }

    #[test]
    fn rules_and_groups_are_read() {
        let c = load(
            "[server]\nnational_prefix = 0\ninternational_prefix = 00\n\
             [user:101]\npassword = x\ncall_level = internal\nforward_busy = 600\n\
             forward_no_answer = 90301234\nno_answer_timeout = 15s\n\
             [user:102]\npassword = y\n\
             [group:600]\nmembers = 101, 102\nstrategy = linear\nring_timeout = 10s\n",
        )
        .unwrap();
        let u = &c.users[0].calls;
        assert_eq!(u.call_level, CallLevel::Internal);
        assert_eq!(u.forward_busy.as_deref(), Some("600"));
        assert_eq!(u.forward_no_answer.as_deref(), Some("90301234"));
        assert_eq!(u.no_answer_timeout, Some(Duration::from_secs(15)));
        assert_eq!(c.users[1].calls, UserCallRules::default());
        let g = &c.groups[0];
        assert_eq!(g.name, "600");
        assert_eq!(g.members, ["101", "102"]);
        assert_eq!(g.strategy, GroupStrategy::Linear);
        assert_eq!(g.ring_timeout, Duration::from_secs(10));
    }

    #[test]
    fn bad_values_and_targets_name_their_line() {
        let e = load(
            "[user:101]\npassword = x\ncall_level = galactic\nforward_busy = 999x\n\
             forward_always = 101\nno_answer_timeout = 2h\n\
             [group:700]\nmembers = 101, 555\nstrategy = random\n\
             [group:101]\nmembers = 101\n",
        )
        .unwrap_err();
        for want in [
            "mss.ini:3: [user:101] call_level: \"galactic\" is not one of internal, national, international",
            "mss.ini:4: [user:101] forward_busy: \"999x\" is not a configured user or group, nor \"9\" and a number",
            "mss.ini:5: [user:101] forward_always: \"101\" forwards the user to itself",
            "mss.ini:6: [user:101] no_answer_timeout: \"2h\" is not between 1s and 10m",
            "mss.ini:8: [group:700] members: \"555\" is not a configured user",
            "mss.ini:9: [group:700] strategy: \"random\" is not one of ring_all, linear, circular",
            "mss.ini:10: [group:101] \"101\" is also a user's name",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }
}
