//! The ban table's part of the core (`mss_services::bans`, kept in the [`Directory`] that
//! the digest guard reports to): every packet is asked about before it is parsed, and
//! dropped when its address is banned or over its request rate; each ban issued becomes
//! one log line at warn level with target `mss::bans` (the fixed form of
//! [`mss_services::bans::BanEvent`], read by fail2ban, `docs/fail2ban.md`) and a count
//! in [`CoreStats`]; the admin API lists and lifts bans.
//!
//! [`Directory`]: mss_services::Directory

use std::net::IpAddr;

use mss_admin::{BanReasonView, BanScopeView, BanView};
use mss_services::bans::{BanCounts, BanInfo, BanReason, BanScope};
use mss_services::{Admit, Now};
use mss_sip::Flow;

use crate::core::Core;
use crate::stats::Dropped;

/// The log target of ban lines, part of the format fail2ban filters match.
pub const BAN_LOG_TARGET: &str = "mss::bans";

impl Core {
    /// Whether the packet `data` from `flow` may be handled: not when its address is
    /// banned, nor when it is a request over its address's rate limit (a line's
    /// provider excepted). What is dropped is counted.
    pub(crate) fn admit_packet(&mut self, now: Now, flow: &Flow, data: &[u8]) -> bool {
        let request = !data.starts_with(b"SIP/");
        let lines = &self.lines;
        let provider = || lines.lines_for_peer(flow).next().is_some();
        match self
            .directory
            .bans
            .admit(now, flow.remote.ip(), request, provider)
        {
            Admit::Pass => true,
            Admit::Banned => {
                self.stats.drop_packet(Dropped::Banned);
                false
            }
            Admit::RateLimited => {
                self.stats.drop_packet(Dropped::RateLimit);
                false
            }
        }
    }

    /// The bans issued since the last call: one log line and one count each.
    pub(crate) fn publish_bans(&mut self, now: Now) {
        if !self.directory.bans.has_events() {
            return;
        }
        while let Some(ban) = self.directory.bans.poll_event() {
            tracing::warn!(target: BAN_LOG_TARGET, "{ban}");
            self.stats.ban_issued(ban.scope, ban.reason);
        }
        self.update_ban_gauges(now);
    }

    /// The gauges of bans in force.
    pub(crate) fn update_ban_gauges(&mut self, now: Now) {
        let c = self.directory.bans.counts(now);
        self.stats.set_active_bans(c.addresses, c.users);
    }

    /// `GET /api/bans`: every ban and user block in force (times in Unix seconds).
    pub fn bans(&mut self, now: Now) -> Vec<BanView> {
        self.directory
            .bans
            .list(now)
            .into_iter()
            .map(ban_view)
            .collect()
    }

    /// Bans in force and addresses tracked by the ban table.
    pub fn ban_counts(&mut self, now: Now) -> BanCounts {
        self.directory.bans.counts(now)
    }

    /// `DELETE /api/bans/{addr}`: ends the bans of `ip`'s address (or IPv6 /64) and
    /// forgets its offences; `false` when nothing was banned there.
    pub fn lift_ban(&mut self, now: Now, ip: IpAddr) -> bool {
        let lifted = self.directory.bans.lift(now, ip);
        if lifted {
            let key = mss_services::bans::SourceKey::of(ip);
            tracing::info!(target: BAN_LOG_TARGET, "ban of {key} lifted by the admin API");
            self.update_ban_gauges(now);
        }
        lifted
    }
}

fn unix_secs(ms: i64) -> u64 {
    u64::try_from(ms.div_euclid(1000)).unwrap_or(0)
}

fn ban_view(b: BanInfo) -> BanView {
    BanView {
        address: b.source.to_string(),
        scope: match b.scope {
            BanScope::Address => BanScopeView::Address,
            BanScope::User => BanScopeView::User,
        },
        reason: match b.reason {
            BanReason::Auth => BanReasonView::Auth,
            BanReason::Rate => BanReasonView::Rate,
        },
        user: b.user,
        failures: b.count,
        since: unix_secs(b.since_unix_ms),
        until: unix_secs(b.until_unix_ms),
        offence: b.offence,
    }
}
