//! The Prometheus text of the core's own, the transport and the store counters, appended to
//! [`mss_admin::Metrics::render`] for `GET /metrics`.

use std::fmt::Write as _;

use mss_core::{CoreStats, Dropped, ShedReason, BAN_KINDS};
use mss_services::bans::BanScope;
use mss_store::StoreStats;
use mss_transport::TransportStatsSnapshot;

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The ban series: bans issued, packets dropped before parsing, bans in force.
fn bans(o: &mut String, w: &CoreStats) {
    header(
        o,
        "mss_bans_total",
        "Bans issued, by scope (address, user) and reason (auth, rate).",
        "counter",
    );
    for (scope, reason) in BAN_KINDS {
        let _ = writeln!(
            o,
            "mss_bans_total{{scope=\"{}\",reason=\"{}\"}} {}",
            scope.as_str(),
            reason.as_str(),
            w.bans_issued(scope, reason)
        );
    }
    header(
        o,
        "mss_bans_dropped_total",
        "Packets dropped before parsing: from a banned address, or requests over the rate limit.",
        "counter",
    );
    for why in Dropped::ALL {
        let _ = writeln!(
            o,
            "mss_bans_dropped_total{{reason=\"{}\"}} {}",
            why.as_str(),
            w.dropped(why)
        );
    }
    header(
        o,
        "mss_bans_active",
        "Bans in force, by scope (address, user).",
        "gauge",
    );
    for scope in [BanScope::Address, BanScope::User] {
        let _ = writeln!(
            o,
            "mss_bans_active{{scope=\"{}\"}} {}",
            scope.as_str(),
            w.active_bans(scope)
        );
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// The media relay's series (DESIGN §8): RTP/RTCP packets relayed, packets dropped by
/// reason, ports in use (all zero without relay).
pub(crate) fn media(o: &mut String, m: &mss_media::io::CountersSnapshot) {
    counter(
        o,
        "mss_rtp_packets_total",
        "RTP and RTCP packets the media relay forwarded.",
        m.relay.relayed,
    );
    header(
        o,
        "mss_rtp_dropped_total",
        "Packets the media relay dropped, by reason.",
        "counter",
    );
    for reason in mss_media::DropReason::ALL {
        let _ = writeln!(
            o,
            "mss_rtp_dropped_total{{reason=\"{}\"}} {}",
            reason.as_str(),
            m.relay.dropped(reason)
        );
    }
    gauge(
        o,
        "mss_rtp_ports_in_use",
        "UDP ports the media relay holds for calls (RTP and RTCP).",
        u64::from(m.relay.ports_in_use),
    );
    counter(
        o,
        "mss_rtp_ports_exhausted_total",
        "Calls refused because the media relay had no free ports.",
        m.relay.exhausted,
    );
}

/// The core, transport and store series in the Prometheus text format.
pub(crate) fn render(w: &CoreStats, t: &TransportStatsSnapshot, s: &StoreStats) -> String {
    let mut o = String::with_capacity(4096);
    counter(
        &mut o,
        "mss_sip_stray_responses_total",
        "Responses that matched no transaction and were dropped.",
        w.stray_responses(),
    );
    counter(
        &mut o,
        "mss_sip_stateless_replies_total",
        "Broken requests answered outside any transaction (400, 505).",
        w.stateless_replies(),
    );
    counter(
        &mut o,
        "mss_sip_transactions_evicted_total",
        "Completed transactions ended before Timer J because too many, or too many bytes, were kept.",
        w.transactions_evicted(),
    );
    bans(&mut o, w);
    header(
        &mut o,
        "mss_sip_shed_total",
        "New requests shed under overload: answered 503 (backlog, transactions) or dropped (backlog_drop).",
        "counter",
    );
    for why in ShedReason::ALL {
        let _ = writeln!(
            o,
            "mss_sip_shed_total{{reason=\"{}\"}} {}",
            why.as_str(),
            w.shed_count(why)
        );
    }
    for (name, help, v) in [
        (
            "mss_transport_udp_datagrams_received_total",
            "UDP datagrams received.",
            t.udp_datagrams_received,
        ),
        (
            "mss_transport_udp_datagrams_dropped_total",
            "UDP datagrams dropped because the worker did not keep up.",
            t.udp_datagrams_dropped,
        ),
        (
            "mss_transport_udp_source_limited_total",
            "UDP requests dropped on arrival: over their address's rate, or from the heaviest sender while the socket is backlogged.",
            t.udp_source_limited,
        ),
        (
            "mss_transport_tcp_messages_received_total",
            "SIP messages framed on TCP connections.",
            t.tcp_messages_received,
        ),
        (
            "mss_transport_bytes_received_total",
            "Bytes received on all sockets.",
            t.bytes_received,
        ),
        (
            "mss_transport_messages_sent_total",
            "Messages handed to a socket or a connection.",
            t.messages_sent,
        ),
        (
            "mss_transport_bytes_sent_total",
            "Bytes handed to a socket or a connection.",
            t.bytes_sent,
        ),
        (
            "mss_transport_tcp_connections_total",
            "TCP connections accepted or opened.",
            t.tcp_connections_total,
        ),
        (
            "mss_transport_tcp_connections_refused_total",
            "Inbound TCP connections refused by the connection limits.",
            t.tcp_connections_refused,
        ),
        (
            "mss_transport_tcp_idle_closed_total",
            "TCP connections closed after the idle timeout.",
            t.tcp_idle_closed,
        ),
        (
            "mss_transport_tcp_keepalives_answered_total",
            "CRLF keep-alives answered (RFC 5626).",
            t.tcp_keepalives_answered,
        ),
        (
            "mss_transport_udp_stun_keepalives_answered_total",
            "STUN Binding requests on UDP answered: keep-alives (RFC 5626 §4.4.2).",
            t.udp_stun_keepalives_answered,
        ),
        (
            "mss_transport_udp_stun_dropped_total",
            "STUN-shaped UDP datagrams dropped unanswered (not a Binding request, or malformed).",
            t.udp_stun_dropped,
        ),
        (
            "mss_transport_framing_errors_total",
            "TCP connections closed for broken framing.",
            t.framing_errors,
        ),
        (
            "mss_transport_send_errors_total",
            "Sends that failed.",
            t.send_errors,
        ),
        (
            "mss_transport_tls_handshakes_total",
            "TLS handshakes completed on accepted connections.",
            t.tls_handshakes,
        ),
        (
            "mss_transport_tls_handshake_failures_total",
            "Accepted TLS connections dropped for a failed handshake (garbage, unknown version, certificate refused).",
            t.tls_handshake_failures,
        ),
        (
            "mss_transport_tls_handshake_timeouts_total",
            "Accepted TLS connections dropped for a handshake not finished in time.",
            t.tls_handshake_timeouts,
        ),
        (
            "mss_transport_tls_client_handshakes_total",
            "Outbound TLS connections (to a line's registrar) whose certificate was verified.",
            t.tls_client_handshakes,
        ),
        (
            "mss_transport_tls_client_failures_total",
            "Outbound TLS connections that failed: connect, handshake or certificate (unknown issuer, name mismatch, expired).",
            t.tls_client_failures,
        ),
        (
            "mss_transport_ws_upgrades_total",
            "WebSocket upgrades accepted (101 with the sip subprotocol).",
            t.ws_upgrades,
        ),
        (
            "mss_transport_ws_upgrade_failures_total",
            "WebSocket upgrade requests refused with an HTTP error (garbage, no sip subprotocol, wrong version) or left unfinished.",
            t.ws_upgrade_failures,
        ),
        (
            "mss_transport_ws_upgrade_timeouts_total",
            "WebSocket connections dropped for an upgrade not finished in time.",
            t.ws_upgrade_timeouts,
        ),
        (
            "mss_transport_ws_messages_received_total",
            "SIP messages received over WebSocket.",
            t.ws_messages_received,
        ),
        (
            "mss_transport_ws_frames_dropped_total",
            "WebSocket messages dropped because they are not one SIP message.",
            t.ws_frames_dropped,
        ),
        (
            "mss_transport_ws_oversize_closed_total",
            "WebSocket connections closed with 1009 for a message over the size limit.",
            t.ws_oversize_closed,
        ),
        (
            "mss_store_commits_total",
            "Store transactions committed.",
            s.commits,
        ),
        (
            "mss_store_writes_total",
            "Store writes carried by those commits.",
            s.writes,
        ),
        (
            "mss_store_failed_commits_total",
            "Store transactions that failed to begin or commit.",
            s.failed_commits,
        ),
    ] {
        counter(&mut o, name, help, v);
    }
    gauge(
        &mut o,
        "mss_transport_tcp_connections_open",
        "TCP connections open now (TLS included).",
        t.tcp_connections_open,
    );
    gauge(
        &mut o,
        "mss_store_largest_batch",
        "Most writes committed together.",
        s.largest_batch,
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_media_relay_series() {
        let mut snap = mss_media::io::CountersSnapshot::default();
        snap.relay.relayed = 613;
        snap.relay.ports_in_use = 4;
        snap.relay.exhausted = 1;
        snap.relay.dropped[mss_media::DropReason::Stranger.index()] = 2;
        let mut text = String::new();
        media(&mut text, &snap);
        assert!(text.contains("mss_rtp_packets_total 613\n"), "{text}");
        assert!(text.contains("# TYPE mss_rtp_ports_in_use gauge\nmss_rtp_ports_in_use 4\n"));
        assert!(text.contains("mss_rtp_ports_exhausted_total 1\n"));
        assert!(text.contains("mss_rtp_dropped_total{reason=\"stranger\"} 2\n"));
        assert!(text.contains("mss_rtp_dropped_total{reason=\"not_rtp\"} 0\n"));
        assert_eq!(text.matches("# TYPE").count(), 4);
    }

    #[test]
    fn renders_every_series_once() {
        let w = CoreStats::default();
        w.stray_response();
        w.stateless_reply();
        w.stateless_reply();
        w.ban_issued(BanScope::User, mss_services::bans::BanReason::Auth);
        w.drop_packet(Dropped::RateLimit);
        w.set_active_bans(2, 1);
        let t = TransportStatsSnapshot {
            udp_datagrams_received: 7,
            udp_stun_keepalives_answered: 4,
            udp_stun_dropped: 2,
            tls_handshake_timeouts: 3,
            tls_client_failures: 6,
            ws_frames_dropped: 5,
            ..TransportStatsSnapshot::default()
        };
        let s = StoreStats {
            commits: 3,
            ..StoreStats::default()
        };
        let text = render(&w, &t, &s);
        assert!(text.contains("mss_sip_stray_responses_total 1\n"));
        assert!(text.contains("mss_transport_tls_client_failures_total 6\n"));
        assert!(text.contains("mss_sip_stateless_replies_total 2\n"));
        assert!(text.contains("mss_bans_total{scope=\"user\",reason=\"auth\"} 1\n"));
        assert!(text.contains("mss_bans_total{scope=\"address\",reason=\"rate\"} 0\n"));
        assert!(text.contains("mss_bans_dropped_total{reason=\"rate_limit\"} 1\n"));
        assert!(text.contains("mss_bans_dropped_total{reason=\"banned\"} 0\n"));
        assert!(text.contains("mss_bans_active{scope=\"address\"} 2\n"));
        assert!(text.contains("# TYPE mss_bans_active gauge\n"));
        assert!(text.contains("mss_transport_udp_datagrams_received_total 7\n"));
        assert!(text.contains("mss_transport_udp_stun_keepalives_answered_total 4\n"));
        assert!(text.contains("mss_transport_udp_stun_dropped_total 2\n"));
        assert!(text.contains("mss_transport_tls_handshake_timeouts_total 3\n"));
        assert!(text.contains("mss_transport_ws_frames_dropped_total 5\n"));
        assert!(text.contains("mss_store_commits_total 3\n"));
        assert!(text.contains("# TYPE mss_store_largest_batch gauge\n"));
        assert_eq!(
            text.matches("# TYPE").count(),
            text.matches("# HELP").count()
        );
    }
}
