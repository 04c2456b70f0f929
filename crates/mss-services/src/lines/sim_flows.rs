//! Simulated-time scenarios: registration, refresh, digest, 423, Retry-After, failover,
//! unreachable providers, shutdown.

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mss_auth::{Algorithm, Verdict};
    use mss_sip::HeaderName;

    use crate::lines::backoff::Backoff;
    use crate::lines::sim::{ok, respond, settings, target, DigestProvider, Reply, Sim, TIMER_F};
    use crate::lines::{LineState, LogLevel, BACKOFF_MAX};

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn registers_and_goes_online() {
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(5), |req, _, _| {
            Reply::Answer(ok(req, 3600))
        });
        assert_eq!(sim.state(), LineState::Online);
        let st = sim.reg.status();
        assert_eq!(st.expires_at, Some(sim.start.unix_ms + 50 + 3_600_000));
        let next = st.next_attempt_at.unwrap() - sim.start.unix_ms;
        assert!((2_988_000..=3_132_100).contains(&next), "{next}");
        assert_eq!(st.call_id_mode.as_str(), "auto");
        let first = &sim.sent[0];
        let text = String::from_utf8(first.request.to_bytes().to_vec()).unwrap();
        assert!(
            text.starts_with("REGISTER sip:sip.provider.example SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK"));
        assert!(text.contains(";rport\r\n"));
        assert!(text.contains("Contact: <sip:2001@198.51.100.9:5060>\r\n"));
        assert!(text.contains("User-Agent: mss-test\r\n"));
        assert_eq!(first.cseq(), 1);
        assert_eq!(first.target, target(1));
        // The stored record comes before the REGISTER that uses it.
        assert_eq!(sim.persisted[0].last_cseq, 1);
        assert_eq!(sim.persisted[0].call_id, first.call_id());
        assert!(sim.order.starts_with("RPS"));
    }

    #[test]
    fn refreshes_at_about_85_percent_over_48_hours() {
        let mut sim = Sim::new(settings(), None);
        let mut provider = DigestProvider::new(vec![Algorithm::Sha256, Algorithm::Md5], 300);
        let mut ok_at = Vec::new();
        sim.run(48 * HOUR, |req, _, now| {
            let reply = provider.handle(req, now);
            if let Reply::Answer(r) = &reply {
                if r.status().as_u16() == 200 {
                    ok_at.push(now);
                }
            }
            reply
        });
        assert_eq!(sim.state(), LineState::Online);
        let ok_at: Vec<f64> = ok_at.iter().map(|t| sim.secs(*t)).collect();
        let refreshes = ok_at.len() - 1;
        // 48 h / (0.83..0.87 of 1 h) gives 55 to 57 refreshes.
        assert!((55..=58).contains(&refreshes), "{refreshes}");
        // Each refresh: a preemptive REGISTER on an expired nonce, 401 stale=true, and the
        // answer with the new nonce.
        for w in ok_at.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                (0.83 * 3600.0 - 2.0..=0.87 * 3600.0 + 2.0).contains(&gap),
                "{gap}"
            );
        }
        // One Call-ID, CSeq one more every time (RFC 3261 §10.2).
        let call_id = sim.sent[0].call_id();
        for (i, s) in sim.sent.iter().enumerate() {
            assert_eq!(s.call_id(), call_id);
            assert_eq!(s.cseq(), u32::try_from(i).unwrap() + 1);
        }
        assert_eq!(
            sim.persisted.last().unwrap().last_cseq,
            u32::try_from(sim.sent.len()).unwrap()
        );
        // Never left online after the first registration.
        assert_eq!(sim.states.len(), 1);
    }

    #[test]
    fn answers_401_with_md5_and_sha256() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let mut sim = Sim::new(settings(), None);
            let mut provider = DigestProvider::new(vec![alg], 300);
            sim.run(Duration::from_secs(10), |req, _, now| {
                provider.handle(req, now)
            });
            assert_eq!(sim.state(), LineState::Online, "{alg:?}");
            assert_eq!(provider.verdicts, vec![Verdict::Ok]);
            assert_eq!(sim.sent.len(), 2);
            assert_eq!(sim.sent[1].cseq(), sim.sent[0].cseq() + 1);
            assert_eq!(sim.sent[1].call_id(), sim.sent[0].call_id());
            let auth = sim.sent[1]
                .request
                .headers()
                .get_str(&HeaderName::Authorization)
                .unwrap()
                .unwrap()
                .to_owned();
            assert!(
                auth.contains(&format!("algorithm={}", alg.as_str())),
                "{auth}"
            );
            assert!(auth.contains("qop=auth") && auth.contains("nc=00000001"));
            // The floor: the authenticated retry waits for the second to pass.
            assert!(sim.secs(sim.sent[1].at) >= 1.0);
        }
    }

    #[test]
    fn answers_407_with_proxy_authorization() {
        let mut sim = Sim::new(settings(), None);
        let mut provider = DigestProvider::new(vec![Algorithm::Sha256, Algorithm::Md5], 300);
        provider.proxy = true;
        sim.run(Duration::from_secs(10), |req, _, now| {
            provider.handle(req, now)
        });
        assert_eq!(sim.state(), LineState::Online);
        assert!(sim.sent[1]
            .request
            .headers()
            .contains(&HeaderName::ProxyAuthorization));
        assert!(sim.sent[1]
            .request
            .headers()
            .get_str(&HeaderName::ProxyAuthorization)
            .unwrap()
            .unwrap()
            .contains("SHA-256"));
    }

    #[test]
    fn stale_nonce_is_answered_again() {
        let mut sim = Sim::new(settings(), None);
        let mut provider = DigestProvider::new(vec![Algorithm::Md5], 60);
        provider.granted = 120;
        sim.run(Duration::from_secs(600), |req, _, now| {
            provider.handle(req, now)
        });
        assert_eq!(sim.state(), LineState::Online);
        assert!(provider.verdicts.contains(&Verdict::Stale));
        assert!(sim.states.iter().all(|s| s.state == LineState::Online));
    }

    #[test]
    fn wrong_password_is_auth_failed_and_backs_off_to_30_minutes() {
        let mut s = settings();
        s.password = "wrong".into();
        let mut sim = Sim::new(s, None);
        let mut provider = DigestProvider::new(vec![Algorithm::Md5], 300);
        sim.run(24 * HOUR, |req, _, now| provider.handle(req, now));
        assert_eq!(sim.state(), LineState::AuthFailed);
        let failure = sim.reg.status().last_failure.clone().unwrap();
        assert_eq!(failure.code, Some(401));
        assert!(
            failure.reason.contains("credentials refused"),
            "{}",
            failure.reason
        );
        assert!(sim.reg.status().next_attempt_at.is_some());
        // First cycle: unauthenticated, 401, answer, 401 again. Then one REGISTER per cycle.
        assert!(!sim.sent[0].has_credentials());
        let cycles: Vec<f64> = sim.sent[1..].iter().map(|s| sim.secs(s.at)).collect();
        for (n, w) in cycles.windows(2).enumerate() {
            let nominal = Backoff::default()
                .nominal(u32::try_from(n).unwrap())
                .as_secs_f64();
            let gap = w[1] - w[0] - 0.05;
            assert!(
                gap >= 0.8 * nominal - 0.01 && gap <= nominal + 0.01,
                "cycle {n}: {gap} vs {nominal}"
            );
        }
        // Reaches the cap and keeps trying: 24 h at ≤ 30 min each.
        let last_gap = cycles[cycles.len() - 1] - cycles[cycles.len() - 2];
        assert!(last_gap >= 0.8 * BACKOFF_MAX.as_secs_f64());
        assert!(cycles.len() > 40, "{}", cycles.len());
    }

    #[test]
    fn forbidden_never_gives_up() {
        let mut sim = Sim::new(settings(), None);
        sim.run(24 * HOUR, |req, _, _| {
            Reply::Answer(respond(req, 403, "Forbidden"))
        });
        assert_eq!(sim.state(), LineState::AuthFailed);
        assert_eq!(sim.states.len(), 1);
        // 30 s, 1, 2, 4, 8, 16 min, then every 24 to 30 min: about 50 tries a day.
        assert!((40..=60).contains(&sim.sent.len()), "{}", sim.sent.len());
        let last = sim.sent.last().unwrap();
        assert!(sim.secs(sim.now) - sim.secs(last.at) <= BACKOFF_MAX.as_secs_f64());
        // The provider relents: online again at the next try.
        sim.run(HOUR, |req, _, _| Reply::Answer(ok(req, 3600)));
        assert_eq!(sim.state(), LineState::Online);
        let f = sim.reg.status().last_failure.clone().unwrap();
        assert_eq!((f.code, f.reason.as_str()), (Some(403), "Forbidden"));
    }

    #[test]
    fn retry_min_and_retry_max_set_the_schedule() {
        let mut s = settings();
        s.retry_min = Duration::from_secs(2);
        s.retry_max = Duration::from_secs(10);
        let mut sim = Sim::new(s, None);
        sim.run(Duration::from_secs(120), |req, _, _| {
            Reply::Answer(respond(req, 403, "Forbidden"))
        });
        assert_eq!(sim.state(), LineState::AuthFailed);
        let at: Vec<f64> = sim.sent.iter().map(|s| sim.secs(s.at)).collect();
        // Nominal 2, 4, 8, 10, 10 … s after each answer (50 ms later), jittered to 80 %.
        for (n, w) in at.windows(2).enumerate() {
            let nominal = [2.0, 4.0, 8.0].get(n).copied().unwrap_or(10.0);
            let gap = w[1] - w[0] - 0.05;
            assert!(
                gap >= 0.8 * nominal - 0.01 && gap <= nominal + 0.01,
                "retry {n}: {gap} vs {nominal}"
            );
        }
        assert!(at.len() > 10, "{at:?}");
        // Online again at the next try once the provider relents, from the short schedule.
        sim.run(Duration::from_secs(11), |req, _, _| {
            Reply::Answer(ok(req, 3600))
        });
        assert_eq!(sim.state(), LineState::Online);
    }

    #[test]
    fn takes_min_expires_from_423() {
        let mut s = settings();
        s.expires = 60;
        let mut sim = Sim::new(s, None);
        sim.run(Duration::from_secs(30), |req, _, _| {
            let asked = req.headers().expires().unwrap().unwrap();
            if asked < 1800 {
                Reply::Answer(
                    respond(req, 423, "Interval Too Brief")
                        .with_header(HeaderName::MinExpires, "1800"),
                )
            } else {
                Reply::Answer(ok(req, 3600))
            }
        });
        assert_eq!(sim.state(), LineState::Online);
        assert_eq!(
            sim.sent.iter().map(|s| s.expires()).collect::<Vec<_>>(),
            vec![60, 1800]
        );
        assert!(sim.logs.iter().any(|l| l.message.contains("1800")));
    }

    #[test]
    fn a_registrar_raising_min_expires_for_ever_is_not_followed() {
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(20), |req, _, _| {
            let asked = req.headers().expires().unwrap().unwrap();
            Reply::Answer(
                respond(req, 423, "Interval Too Brief")
                    .with_header(HeaderName::MinExpires, (asked + 1).to_string()),
            )
        });
        assert_eq!(sim.state(), LineState::Rejected);
        assert_eq!(sim.sent.len(), 4);
        let f = sim.reg.status().last_failure.clone().unwrap();
        assert!(f.reason.contains("423 in a row"), "{}", f.reason);
    }

    #[test]
    fn honours_retry_after_with_jitter() {
        let mut sim = Sim::new(settings(), None);
        let mut n = 0;
        sim.run(Duration::from_secs(900), |req, _, _| {
            n += 1;
            if n == 1 {
                Reply::Answer(
                    respond(req, 503, "Service Unavailable")
                        .with_header(HeaderName::RetryAfter, "300"),
                )
            } else {
                Reply::Answer(ok(req, 3600))
            }
        });
        assert_eq!(sim.state(), LineState::Online);
        let gap = sim.secs(sim.sent[1].at) - sim.secs(sim.sent[0].at);
        assert!((300.0..=331.0).contains(&gap), "{gap}");
        assert!(sim.states.iter().any(|s| s.state == LineState::BackingOff));
    }

    #[test]
    fn fails_over_to_next_target_on_503_and_timeout() {
        for silent in [false, true] {
            let mut sim = Sim::new(settings(), None);
            sim.targets = vec![target(1), target(2)];
            sim.run(Duration::from_secs(60), |req, t, _| {
                if t.addr == target(1).addr {
                    if silent {
                        Reply::Silence
                    } else {
                        Reply::Answer(respond(req, 503, "Service Unavailable"))
                    }
                } else {
                    Reply::Answer(ok(req, 3600))
                }
            });
            assert_eq!(sim.state(), LineState::Online, "silent={silent}");
            assert_eq!(sim.sent.len(), 2);
            assert_eq!(sim.sent[1].target, target(2));
            let gap = sim.secs(sim.sent[1].at) - sim.secs(sim.sent[0].at);
            if silent {
                assert!((TIMER_F.as_secs_f64()..TIMER_F.as_secs_f64() + 1.0).contains(&gap));
            } else {
                assert!((1.0..1.1).contains(&gap), "{gap}");
            }
            assert!(sim
                .logs
                .iter()
                .any(|l| l.level == LogLevel::Info && l.message.contains("trying 192.0.2.2")));
            // The refresh stays with the target that answered.
            sim.run(HOUR, |req, _, _| Reply::Answer(ok(req, 3600)));
            assert_eq!(sim.sent[2].target, target(2));
        }
    }

    #[test]
    fn silence_is_unreachable_then_recovers() {
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(600), |_, _, _| Reply::Silence);
        assert_eq!(sim.state(), LineState::Unreachable);
        let f = sim.reg.status().last_failure.clone().unwrap();
        assert_eq!(f.code, Some(408));
        assert!(f.reason.contains("no answer"));
        let tries = sim.sent.len();
        assert!((3..=8).contains(&tries), "{tries}");
        // Each retry resolves again.
        assert_eq!(sim.resolves, tries);
        sim.run(HOUR, |req, _, _| Reply::Answer(ok(req, 3600)));
        assert_eq!(sim.state(), LineState::Online);
        // DNS failure is unreachable too, and recovers.
        let mut sim = Sim::new(settings(), None);
        sim.targets.clear();
        sim.run(Duration::from_secs(120), |req, _, _| {
            Reply::Answer(ok(req, 3600))
        });
        assert_eq!(sim.state(), LineState::Unreachable);
        assert_eq!(sim.reg.status().last_failure.as_ref().unwrap().code, None);
        sim.targets = vec![target(1)];
        sim.run(HOUR, |req, _, _| Reply::Answer(ok(req, 3600)));
        assert_eq!(sim.state(), LineState::Online);
    }

    #[test]
    fn unregisters_on_shutdown() {
        let mut sim = Sim::new(settings(), None);
        let mut provider = DigestProvider::new(vec![Algorithm::Md5], 300);
        sim.run(Duration::from_secs(60), |req, _, now| {
            provider.handle(req, now)
        });
        assert_eq!(sim.state(), LineState::Online);
        sim.reg.shutdown(sim.now);
        sim.run(Duration::from_secs(60), |req, _, now| {
            provider.handle(req, now)
        });
        let last = sim.sent.last().unwrap();
        assert_eq!(last.expires(), 0);
        assert!(last.has_credentials());
        assert_eq!(sim.state(), LineState::Offline);
        assert!(sim.reg.is_done());
        assert_eq!(sim.reg.poll_timeout(), None);
        assert_eq!(sim.reg.status().expires_at, None);
        // Never registered: nothing to remove.
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(100), |_, _, _| Reply::Silence);
        sim.reg.shutdown(sim.now);
        let before = sim.sent.len();
        sim.run(Duration::from_secs(100), |_, _, _| Reply::Silence);
        assert_eq!(sim.sent.len(), before);
        assert!(sim.reg.is_done());
    }

    #[test]
    fn shutdown_during_a_register_in_flight_unregisters_after_its_answer() {
        let mut sim = Sim::new(settings(), None);
        sim.run(Duration::from_secs(5), |req, _, _| {
            Reply::Answer(ok(req, 3600))
        });
        let refresh_in = Duration::from_secs(3200);
        sim.run(refresh_in, |_, _, _| Reply::Silence);
        // The refresh is in flight (silent so far); shut down now.
        sim.reg.shutdown(sim.now);
        sim.run(Duration::from_secs(100), |req, _, _| {
            Reply::Answer(ok(req, 3600))
        });
        assert!(sim.reg.is_done());
        assert_eq!(sim.state(), LineState::Offline);
    }
}
