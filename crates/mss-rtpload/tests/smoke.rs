//! A handful of calls for a second through the mss relay thread (in this process) and on
//! the direct path: every packet arrives, once, in order, unchanged, at its own far side.

use std::net::IpAddr;
use std::time::Duration;

use mss_media::io::{ReceiveMode, Scheduling};
use mss_media::PortRange;
use mss_rtpload::{run, LoadConfig, RunReport, TargetKind};

fn config() -> LoadConfig {
    LoadConfig::new(5, Duration::from_secs(1))
}

fn assert_clean(r: &RunReport) {
    let t = &r.totals;
    assert_eq!(t.streams, 10, "{r:?}");
    assert_eq!(t.sent, 10 * 50, "{r:?}");
    assert_eq!(t.received, t.sent, "lost: {r:?}");
    assert_eq!((t.lost, t.reordered, t.duplicates), (0, 0, 0), "{r:?}");
    assert_eq!(
        (t.seq_mismatch, t.timestamp_mismatch, t.ssrc_mismatch),
        (0, 0, 0),
        "{r:?}"
    );
    assert_eq!(
        (r.misdelivered, r.foreign, r.send_errors),
        (0, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.transit.samples, t.sent, "{r:?}");
}

#[test]
fn five_calls_through_the_mss_relay_lose_nothing() {
    for receive in [ReceiveMode::Batched, ReceiveMode::Plain, ReceiveMode::Uring] {
        let kind = TargetKind::Mss {
            name: "mss",
            address: IpAddr::from([127, 0, 0, 1]),
            ports: PortRange::new(52_000, 52_099).unwrap(),
            receive,
            scheduling: Scheduling::default(),
        };
        let r = run(&kind, &config()).unwrap();
        assert_clean(&r);
        let usage = r.relay.as_ref().unwrap();
        // The relay counted what the far side received (plus nothing else).
        assert_eq!(usage.relay_counted, Some(r.totals.received), "{r:?}");
        assert!(usage.cpu_ms > 0.0, "{r:?}");
    }
}

#[test]
fn the_direct_path_loses_nothing_and_has_no_relay_readings() {
    let r = run(&TargetKind::Direct, &config()).unwrap();
    assert_clean(&r);
    assert!(r.relay.is_none());
}
