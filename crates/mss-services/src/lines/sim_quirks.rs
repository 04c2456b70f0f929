//! Simulated-time scenarios for the Call-ID policy, restarts, malformed answers and the
//! one-REGISTER-per-second floor under any provider behaviour.

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use mss_auth::Algorithm;
    use mss_sip::{HeaderName, Request};
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use crate::lines::sim::{ok, respond, settings, DigestProvider, Reply, Sim};
    use crate::lines::{CallIdMode, LineState, LogLevel, MIN_REGISTER_INTERVAL};

    const HOUR: Duration = Duration::from_secs(3600);

    /// The classic quirk: a Call-ID that was already registered is refused with
    /// `400 Bad Request` + `P-Registrar-Error: Invalid CSeq number`.
    fn quirky(seen: &mut HashSet<String>, req: &Request) -> Reply {
        let call_id = req.headers().call_id().unwrap().to_owned();
        if seen.contains(&call_id) {
            let r = respond(req, 400, "Bad Request").with_header(
                HeaderName::from_static("P-Registrar-Error"),
                "Invalid CSeq number",
            );
            return Reply::Answer(r);
        }
        seen.insert(call_id);
        Reply::Answer(ok(req, 3600))
    }

    #[test]
    fn auto_switches_to_fresh_after_invalid_cseq_and_stays_online() {
        let mut sim = Sim::new(settings(), None);
        let mut seen = HashSet::new();
        // First registration, then the first refresh meets the quirk, then three refreshes.
        sim.run(4 * HOUR + Duration::from_secs(60), |req, _, _| {
            quirky(&mut seen, req)
        });
        assert_eq!(sim.state(), LineState::Online);
        assert_eq!(sim.reg.status().call_id_mode.as_str(), "auto_fresh");
        let statuses: Vec<_> = sim.states.iter().map(|s| s.state).collect();
        assert!(
            statuses.iter().all(|s| *s == LineState::Online),
            "{statuses:?}"
        );
        // REGISTERs: first, refused refresh, immediate fresh retry, three refreshes.
        assert_eq!(
            sim.sent.len(),
            6,
            "{:?}",
            sim.sent.iter().map(|s| sim.secs(s.at)).collect::<Vec<_>>()
        );
        assert_eq!(sim.sent[1].call_id(), sim.sent[0].call_id());
        let retry_gap = sim.secs(sim.sent[2].at) - sim.secs(sim.sent[1].at);
        assert!((1.0..1.2).contains(&retry_gap), "{retry_gap}");
        let ids: HashSet<String> = sim.sent[2..].iter().map(|s| s.call_id()).collect();
        assert_eq!(ids.len(), 4);
        // One clear warning, naming both ways to pin it.
        let warns: Vec<_> = sim
            .logs
            .iter()
            .filter(|l| l.level == LogLevel::Warn)
            .collect();
        assert_eq!(warns.len(), 1);
        let w = &warns[0].message;
        assert!(w.contains("Invalid CSeq number"), "{w}");
        assert!(
            w.contains("call_id = fresh") && w.contains("[line:provider1]"),
            "{w}"
        );
        assert!(
            w.contains("gVarSipRegSameDialog = 0") && w.contains("mss_var_param.ini"),
            "{w}"
        );
        let f = sim.reg.status().last_failure.clone().unwrap();
        assert_eq!(f.p_registrar_error.as_deref(), Some("Invalid CSeq number"));
    }

    #[test]
    fn auto_also_reads_the_reason_phrase_of_a_500() {
        let mut sim = Sim::new(settings(), None);
        let mut n = 0;
        sim.run(Duration::from_secs(30), |req, _, _| {
            n += 1;
            if n == 1 {
                Reply::Answer(respond(req, 500, "Request Out of Order"))
            } else {
                Reply::Answer(ok(req, 3600))
            }
        });
        assert_eq!(sim.state(), LineState::Online);
        assert_eq!(sim.reg.status().call_id_mode.as_str(), "auto_fresh");
    }

    #[test]
    fn fresh_gives_every_register_a_new_call_id_and_tag() {
        let mut s = settings();
        s.call_id_mode = CallIdMode::Fresh;
        let mut sim = Sim::new(s, None);
        let mut provider = DigestProvider::new(vec![Algorithm::Md5], 300);
        sim.run(3 * HOUR, |req, _, now| provider.handle(req, now));
        assert_eq!(sim.state(), LineState::Online);
        assert!(sim.sent.len() >= 5);
        let ids: HashSet<String> = sim.sent.iter().map(|s| s.call_id()).collect();
        let tags: HashSet<String> = sim.sent.iter().map(|s| s.tag_in_from()).collect();
        assert_eq!(ids.len(), sim.sent.len());
        assert_eq!(tags.len(), sim.sent.len());
        // The authenticated retry too.
        assert!(sim.sent[1].has_credentials());
        assert_ne!(sim.sent[1].call_id(), sim.sent[0].call_id());
        assert_eq!(sim.reg.status().call_id_mode.as_str(), "fresh");
    }

    #[test]
    fn same_with_the_quirk_is_rejected_without_a_tight_loop() {
        let mut s = settings();
        s.call_id_mode = CallIdMode::Same;
        let mut sim = Sim::new(s, None);
        let mut seen = HashSet::new();
        sim.run(HOUR / 2, |req, _, _| quirky(&mut seen, req));
        assert_eq!(sim.state(), LineState::Online);
        sim.run(2 * HOUR, |req, _, _| quirky(&mut seen, req));
        assert_eq!(sim.state(), LineState::Rejected);
        let f = sim.reg.status().last_failure.clone().unwrap();
        assert_eq!(f.code, Some(400));
        assert_eq!(f.p_registrar_error.as_deref(), Some("Invalid CSeq number"));
        assert_eq!(sim.reg.status().call_id_mode.as_str(), "same");
        // Backoff, not a loop: 30 s, 60 s, 120 s … over about 2 h is under a dozen tries.
        assert!(sim.sent.len() < 14, "{}", sim.sent.len());
        assert!(sim.reg.status().next_attempt_at.is_some());
        let ids: HashSet<String> = sim.sent.iter().map(|s| s.call_id()).collect();
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn restart_continues_above_the_persisted_cseq() {
        let mut sim = Sim::new(settings(), None);
        sim.run(5 * HOUR, |req, _, _| Reply::Answer(ok(req, 3600)));
        let record = sim.persisted.last().unwrap().clone();
        let last = sim.sent.last().unwrap();
        assert_eq!(record.last_cseq, last.cseq());
        assert_eq!(record.call_id, last.call_id());
        assert_eq!(record.name, "provider1");
        // Restart.
        let mut again = Sim::with_seed(settings(), Some(record.clone()), 7);
        again.run(Duration::from_secs(5), |req, _, _| {
            Reply::Answer(ok(req, 3600))
        });
        let first = &again.sent[0];
        assert_eq!(first.call_id(), record.call_id);
        assert_eq!(first.tag_in_from(), record.from_tag);
        assert_eq!(first.cseq(), record.last_cseq + 1);
        assert_eq!(again.state(), LineState::Online);
    }

    #[test]
    fn restart_keeps_the_switch_to_fresh_call_ids() {
        let mut sim = Sim::new(settings(), None);
        let mut seen = HashSet::new();
        sim.run(2 * HOUR, |req, _, _| quirky(&mut seen, req));
        assert_eq!(sim.reg.status().call_id_mode.as_str(), "auto_fresh");
        let record = sim.persisted.last().unwrap().clone();
        assert_eq!(record.call_id_mode.as_deref(), Some("auto_fresh"));
        // Restart against the same registrar: no complaint is provoked again.
        let mut again = Sim::with_seed(settings(), Some(record.clone()), 7);
        assert_eq!(again.reg.status().call_id_mode.as_str(), "auto_fresh");
        let mut answers = Vec::new();
        again.run(3 * HOUR, |req, _, _| {
            let reply = quirky(&mut seen, req);
            if let Reply::Answer(r) = &reply {
                answers.push(r.status().as_u16());
            }
            reply
        });
        assert_eq!(again.state(), LineState::Online);
        assert!(answers.iter().all(|c| *c == 200), "{answers:?}");
        assert!(again.reg.status().last_failure.is_none());
        assert_ne!(again.sent[0].call_id(), record.call_id);
        assert!(again.sent[0].cseq() > record.last_cseq);
        let ids: HashSet<String> = again.sent.iter().map(|s| s.call_id()).collect();
        assert_eq!(ids.len(), again.sent.len());
        // Said once, at start, as information (the warning was given when it was detected).
        assert!(again.logs.iter().all(|l| l.level == LogLevel::Info));
        let notes: Vec<_> = again
            .logs
            .iter()
            .filter(|l| l.message.contains("fresh Call-ID per REGISTER"))
            .collect();
        assert_eq!(notes.len(), 1, "{:?}", again.logs);
        assert!(again
            .persisted
            .iter()
            .all(|r| r.call_id_mode.as_deref() == Some("auto_fresh")));
        // The admin pins same: the stored switch is ignored, and the quirk answers again.
        let mut s = settings();
        s.call_id_mode = CallIdMode::Same;
        let mut pinned = Sim::with_seed(s, Some(record), 8);
        assert_eq!(pinned.reg.status().call_id_mode.as_str(), "same");
        pinned.run(Duration::from_secs(5), |req, _, _| quirky(&mut seen, req));
        assert_eq!(pinned.state(), LineState::Rejected);
    }

    #[test]
    fn malformed_challenges_end_in_auth_failed_with_a_reason_and_a_retry() {
        let cases = [
            ("Digest realm=\"p\", qop=\"auth\"", "nonce"),
            (
                "Digest realm=\"p\", nonce=\"n\", algorithm=SHA-512-256-sess",
                "SHA-512-256-sess",
            ),
            ("Basic realm=\"p\"", "no Digest challenge"),
            ("Digest realm=\"p\", nonce=\"n\", qop=\"auth-int\"", "qop"),
        ];
        for (challenge, needle) in cases {
            let mut sim = Sim::new(settings(), None);
            sim.run(Duration::from_secs(600), |req, _, _| {
                Reply::Answer(
                    respond(req, 401, "Unauthorized")
                        .with_header(HeaderName::WwwAuthenticate, challenge),
                )
            });
            assert_eq!(sim.state(), LineState::AuthFailed, "{challenge}");
            let f = sim.reg.status().last_failure.clone().unwrap();
            assert!(f.reason.contains(needle), "{challenge}: {}", f.reason);
            assert!(
                sim.sent.len() >= 3 && sim.sent.len() < 10,
                "{}",
                sim.sent.len()
            );
        }
    }

    #[test]
    fn odd_200s_are_accepted_with_a_notice() {
        // Absurd expiry: clamped to what was asked.
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(5), |req, _, _| {
            let c = req
                .headers()
                .get_str(&HeaderName::Contact)
                .unwrap()
                .unwrap()
                .to_owned();
            Reply::Answer(
                respond(req, 200, "OK")
                    .with_header(HeaderName::Contact, format!("{c};expires=999999999")),
            )
        });
        assert_eq!(sim.state(), LineState::Online);
        let st = sim.reg.status();
        assert!(st.notice.as_ref().unwrap().contains("absurd"));
        assert_eq!(st.expires_at, Some(sim.start.unix_ms + 50 + 3_600_000));
        // No Contact at all.
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(5), |req, _, _| {
            Reply::Answer(respond(req, 200, "OK"))
        });
        assert_eq!(sim.state(), LineState::Online);
        assert!(sim
            .reg
            .status()
            .notice
            .as_ref()
            .unwrap()
            .contains("does not list our Contact"));
        assert!(sim.logs.iter().any(|l| l.level == LogLevel::Warn));
        // Granted 0: refresh soon rather than never.
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(200), |req, _, _| {
            let c = req
                .headers()
                .get_str(&HeaderName::Contact)
                .unwrap()
                .unwrap()
                .to_owned();
            Reply::Answer(
                respond(req, 200, "OK").with_header(HeaderName::Contact, format!("{c};expires=0")),
            )
        });
        assert_eq!(sim.state(), LineState::Online);
        assert!(
            sim.sent.len() >= 3 && sim.sent.len() <= 5,
            "{}",
            sim.sent.len()
        );
        // 423 without Min-Expires: rejected with the reason, retried later.
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(20), |req, _, _| {
            Reply::Answer(respond(req, 423, "Interval Too Brief"))
        });
        assert_eq!(sim.state(), LineState::Rejected);
        assert!(sim
            .reg
            .status()
            .last_failure
            .as_ref()
            .unwrap()
            .reason
            .contains("no Min-Expires"));
        assert_eq!(sim.sent.len(), 1);
    }

    #[test]
    fn stray_and_provisional_answers_are_ignored() {
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(5), |req, _, _| {
            let mut r = respond(req, 200, "OK");
            r.headers_mut().replace(HeaderName::CallId, "someone-else");
            Reply::Answer(r)
        });
        assert_eq!(sim.state(), LineState::Registering);
        sim.run(Duration::from_secs(5), |req, _, _| {
            Reply::Answer(respond(req, 180, "Ringing"))
        });
        // The REGISTER in flight times out by the line's own guard, then is retried.
        sim.run(Duration::from_secs(600), |req, _, _| {
            Reply::Answer(ok(req, 3600))
        });
        assert_eq!(sim.state(), LineState::Online);
    }

    /// A provider that answers anything, in any order, including nothing.
    fn chaos(rng: &mut StdRng, req: &Request) -> Reply {
        let c = req
            .headers()
            .get_str(&HeaderName::Contact)
            .unwrap()
            .unwrap()
            .to_owned();
        let r = match rng.gen_range(0..14) {
            0 => return Reply::Silence,
            1 => ok(req, rng.gen_range(0..5000)),
            2 => respond(req, 401, "Unauthorized").with_header(
                HeaderName::WwwAuthenticate,
                format!(
                    "Digest realm=\"p\", nonce=\"{}\", qop=\"auth\", stale={}",
                    rng.gen::<u8>(),
                    rng.gen_bool(0.5)
                ),
            ),
            3 => respond(req, 407, "Proxy Authentication Required").with_header(
                HeaderName::ProxyAuthenticate,
                "Digest realm=\"p\", nonce=\"x\"",
            ),
            4 => respond(req, 423, "Interval Too Brief").with_header(
                HeaderName::MinExpires,
                rng.gen_range(0..100_000).to_string(),
            ),
            5 => respond(req, 400, "Bad Request").with_header(
                HeaderName::from_static("P-Registrar-Error"),
                "Invalid CSeq number",
            ),
            6 => respond(req, 500, "Out of order"),
            7 => respond(req, 503, "Service Unavailable")
                .with_header(HeaderName::RetryAfter, rng.gen_range(0..3).to_string()),
            8 => respond(req, 403, "Forbidden"),
            9 => respond(req, 200, "OK").with_header(HeaderName::Contact, "<<garbage"),
            10 => {
                respond(req, 200, "OK").with_header(HeaderName::Contact, format!("{c};expires=1"))
            }
            11 => respond(req, 100, "Trying"),
            12 => respond(req, 302, "Moved"),
            _ => respond(req, 401, "Unauthorized")
                .with_header(HeaderName::WwwAuthenticate, "Digest nonce"),
        };
        Reply::Answer(r)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn at_most_one_register_per_second_under_any_provider(seed in any::<u64>(), mode in 0u8..3) {
            let mut s = settings();
            s.call_id_mode = [CallIdMode::Auto, CallIdMode::Same, CallIdMode::Fresh][usize::from(mode)];
            let mut sim = Sim::with_seed(s, None, seed);
            sim.targets = vec![crate::lines::sim::target(1), crate::lines::sim::target(2)];
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            sim.run(2 * HOUR, |req, _, _| chaos(&mut rng, req));
            for w in sim.sent.windows(2) {
                prop_assert!(w[1].at.mono - w[0].at.mono >= MIN_REGISTER_INTERVAL);
            }
            // Never stuck: something is always scheduled or in flight.
            prop_assert!(sim.reg.poll_timeout().is_some());
            sim.reg.shutdown(sim.now);
            sim.run(Duration::from_secs(300), |req, _, _| Reply::Answer(ok(req, 0)));
            prop_assert!(sim.reg.is_done());
        }
    }
}
