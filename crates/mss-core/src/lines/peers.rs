//! Which line a request came through: a request whose source is the registrar a line
//! registers at now (its current lookup target, over the line's transport) comes from that
//! line's provider. Messaging (`messaging/admission.rs`) admits such a MESSAGE to the line's
//! number without a challenge: the provider does not know our users' passwords, and the
//! line's registration is the trust between mss and the provider.

use mss_services::lines::{LineState, Target};
use mss_sip::Flow;

use super::{Lines, Slot};

impl Slot {
    /// The line as a request through it sees it.
    fn peer(&self) -> LinePeer<'_> {
        LinePeer {
            name: &self.settings.name,
            number: &self.settings.number,
            owner: self.owner.as_deref(),
        }
    }
}

/// What a call out through a line needs of it (DESIGN §8): where to send, who we are
/// there, and the credentials for the provider's challenge.
#[derive(Debug, Clone)]
pub(crate) struct LineOut {
    /// The line's name (`[line:NAME]`).
    pub(crate) name: String,
    /// The line's number (the From user of calls out through it).
    pub(crate) number: String,
    /// The provider's domain (the host of From, To and the Request-URI).
    pub(crate) domain: String,
    /// The digest user name.
    pub(crate) username: String,
    /// The digest password.
    pub(crate) password: String,
    /// The registrar (or outbound proxy) the line registers at now, and our address there.
    pub(crate) target: Target,
}

/// A line a request came through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinePeer<'a> {
    /// The line's name (`[line:NAME]`).
    pub(crate) name: &'a str,
    /// The line's number at the provider (its AOR user part).
    pub(crate) number: &'a str,
    /// The local user who receives the line's incoming requests.
    pub(crate) owner: Option<&'a str>,
}

impl Lines {
    /// The lines a local user's call may go out through now, in configuration order:
    /// `outgoing` and online (registered, or re-registering with a binding that has not
    /// expired), with a registrar target.
    pub(crate) fn outgoing_lines(&self, now_ms: i64) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| {
                let Some(machine) = slot.machine.as_ref() else {
                    return false;
                };
                let status = machine.status();
                let registered = match status.state {
                    LineState::Online => true,
                    LineState::Registering => status.expires_at.is_some_and(|t| t > now_ms),
                    _ => false,
                };
                slot.outgoing && registered && machine.target().is_some()
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Line `index` as a call out through it needs it; `None` without a registrar target.
    pub(crate) fn line_out(&self, index: usize) -> Option<LineOut> {
        let slot = self.slots.get(index)?;
        let target = *slot.machine.as_ref()?.target()?;
        let s = &slot.settings;
        Some(LineOut {
            name: s.name.clone(),
            number: s.number.clone(),
            domain: s.domain().to_owned(),
            username: s.username().to_owned(),
            password: s.password.clone(),
            target,
        })
    }

    /// Line `index` as a request through it sees it.
    pub(crate) fn line_peer(&self, index: usize) -> Option<LinePeer<'_>> {
        self.slots.get(index).map(Slot::peer)
    }

    /// The line whose number is `number`, with its owner: a call to a line's number is
    /// one of its incoming calls (DESIGN §8).
    pub(crate) fn line_with_number<'a>(&'a self, number: &str) -> Option<(usize, LinePeer<'a>)> {
        self.slots
            .iter()
            .enumerate()
            .find(|(_, s)| s.settings.number == number)
            .map(|(i, slot)| (i, slot.peer()))
    }

    /// The lines whose current registrar target is `from` (same address, port and
    /// transport), in configuration order: several lines of one provider share it.
    pub(crate) fn lines_for_peer<'a>(
        &'a self,
        from: &'a Flow,
    ) -> impl Iterator<Item = LinePeer<'a>> + 'a {
        self.slots.iter().filter_map(move |slot| {
            let target = slot.machine.as_ref()?.target()?;
            (target.addr == from.remote && target.transport == from.transport).then(|| slot.peer())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use mss_services::lines::{LineOutput, LineSettings, Registration, Target};
    use mss_services::Now;
    use mss_sip::Transport;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::lines::LineSetup;

    fn now() -> Now {
        Now::new(std::time::Instant::now(), 1_800_000_000_000)
    }

    fn lines() -> Lines {
        let setup = |name: &str, host: &str, port: Option<u16>, number: &str| {
            let mut settings = LineSettings::new(name, host, number, "x");
            settings.port = port;
            LineSetup {
                settings,
                owner: None,
                outgoing: true,
            }
        };
        Lines::new(
            vec![
                setup("p1", "192.0.2.1", Some(5070), "2001"),
                setup("p2", "192.0.2.2", None, "2002"),
                setup("p3", "192.0.2.1", Some(5070), "2003"),
            ],
            now(),
        )
    }

    /// Starts line `index`'s machine and gives it `targets` as its lookup's answer.
    fn resolve(lines: &mut Lines, index: usize, targets: Vec<Target>) {
        let now = now();
        let mut rng = StdRng::seed_from_u64(1);
        let slot = &mut lines.slots[index];
        let mut machine = Registration::new(slot.settings.clone(), None, now, &mut rng);
        // The machine takes a lookup's answer only after asking for it.
        while let Some(out) = machine.poll_output(now, &mut rng) {
            if matches!(out, LineOutput::Resolve(_)) {
                break;
            }
        }
        machine.handle_resolved(now, targets);
        slot.machine = Some(machine);
    }

    fn target(addr: &str) -> Target {
        Target {
            addr: addr.parse().unwrap(),
            transport: Transport::Udp,
            local: SocketAddr::from(([198, 51, 100, 9], 5060)),
        }
    }

    #[test]
    fn a_request_from_a_lines_registrar_names_the_line() {
        let mut lines = lines();
        let p1 = Flow::udp("192.0.2.1:5070".parse().unwrap());
        let names = |lines: &Lines, from: &Flow| -> Vec<String> {
            lines
                .lines_for_peer(from)
                .map(|l| format!("{}/{}", l.name, l.number))
                .collect()
        };
        // Not started yet: no target, no line.
        assert!(names(&lines, &p1).is_empty());
        resolve(&mut lines, 0, vec![target("192.0.2.1:5070")]);
        resolve(&mut lines, 1, vec![target("192.0.2.2:5060")]);
        assert_eq!(names(&lines, &p1), ["p1/2001"]);
        // A second line at the same registrar.
        resolve(&mut lines, 2, vec![target("192.0.2.1:5070")]);
        assert_eq!(names(&lines, &p1), ["p1/2001", "p3/2003"]);
        let p2 = Flow::udp("192.0.2.2:5060".parse().unwrap());
        assert_eq!(names(&lines, &p2), ["p2/2002"]);
        // Another port, another host, another transport: no line.
        for other in [
            Flow::udp("192.0.2.1:5060".parse().unwrap()),
            Flow::udp("192.0.2.3:5070".parse().unwrap()),
            Flow {
                transport: Transport::Tcp,
                ..Flow::udp("192.0.2.1:5070".parse().unwrap())
            },
        ] {
            assert!(names(&lines, &other).is_empty(), "{other}");
        }
    }
}
