//! The rules of one role's choice: which PoP is ideal ([`preferred`]), and whether the current
//! choice stands, is refreshed, or gives way ([`Round::decide`]), with the anti-flap rule.

use std::time::SystemTime;

use super::{Choice, Evidence, LocationSelection, RoleState, SelectionSettings};
use crate::catalog::PopId;
use crate::rank::{Basis, RankedPop, Ranking};
use crate::timestamp::{rfc3339, unix_seconds};

/// PoPs this close count as the same place when ranking by distance.
const SAME_PLACE_KM: f64 = 1.0;

/// The best PoP among `candidates` (in rank order), with the provider preferences applied
/// among those within the margin of the best.
pub(super) fn preferred<'a>(
    candidates: &[&'a RankedPop],
    settings: &SelectionSettings,
    avoid_provider: Option<&str>,
    basis: Basis,
) -> Option<&'a RankedPop> {
    let best = *candidates.first()?;
    // Which PoPs are as good as the best: within the margin on latency; at the same place
    // (within a kilometre: the same city's other providers) by distance.
    let within: Vec<&RankedPop> = match basis {
        Basis::Latency if !best.reachable => return Some(best),
        Basis::Latency => {
            let best_score = best.score?;
            candidates
                .iter()
                .copied()
                .filter(|p| {
                    p.reachable
                        && p.score
                            .is_some_and(|s| s <= best_score + settings.provider_margin_ms)
                })
                .collect()
        }
        Basis::Distance => candidates
            .iter()
            .copied()
            .filter(|p| p.distance_km <= best.distance_km + SAME_PLACE_KM)
            .collect(),
    };
    let preference = |p: &RankedPop| {
        let avoided = avoid_provider.is_some_and(|a| a.eq_ignore_ascii_case(&p.pop.provider));
        let order = settings
            .providers
            .iter()
            .position(|x| x.eq_ignore_ascii_case(&p.pop.provider))
            .unwrap_or(usize::MAX);
        (avoided, order)
    };
    // min_by_key keeps the first of equals, so rank order decides among equals.
    within
        .into_iter()
        .min_by_key(|p| preference(p))
        .or(Some(best))
}

/// A PoP of the ranking as a choice: its best endpoint, chosen `now`.
fn choice(p: &RankedPop, now: SystemTime) -> Option<Choice> {
    let e = p.best_endpoint()?;
    Some(Choice {
        pop: p.pop.id(),
        fqdn: e.fqdn.to_string(),
        ip: e.ip,
        score: p.score,
        rtt_ms: p.rtt.map(|s| s.median.as_secs_f64() * 1000.0),
        since: rfc3339(now),
        since_unix: unix_seconds(now),
    })
}

/// One location's round of selection: its ranking and the rules it is judged by.
pub(super) struct Round<'a> {
    pub ranking: &'a Ranking,
    pub settings: &'a SelectionSettings,
    /// Whether this host's latency applies to the location.
    pub local: bool,
    pub now: SystemTime,
}

/// What a challenger to the current choice has achieved.
enum Challenge {
    /// No challenger, or none good enough this round.
    None,
    /// Better enough, but not yet for enough rounds in a row.
    Winning(Evidence),
    /// Better enough for enough rounds: the reason to switch.
    Won(String),
}

impl Round<'_> {
    /// Keep, refresh or replace one role's choice. `ideal` is the PoP the rules prefer now;
    /// a current choice in `forbidden_city` (the primary's, for the secondary) must go.
    /// Returns the role's new state and, when its PoP changed, why.
    pub fn decide(
        &self,
        prev: &RoleState,
        ideal: Option<&RankedPop>,
        forbidden_city: Option<&PopId>,
    ) -> (RoleState, Option<String>) {
        let take = |reason: String| {
            let state = RoleState {
                choice: ideal.and_then(|p| choice(p, self.now)),
                evidence: Evidence::default(),
            };
            (state, Some(reason))
        };
        let Some(current) = &prev.choice else {
            return take("first choice".into());
        };
        let now_ranked = match self.still_valid(current, forbidden_city) {
            Ok(p) => p,
            Err(reason) => return take(reason.into()),
        };
        let keep = |evidence: Evidence| {
            let state = RoleState {
                choice: Some(refreshed(self.ranking, current, now_ranked)),
                evidence,
            };
            (state, None)
        };
        // A local location that hears no PoP at all (this host lost its uplink, or ICMP
        // broke) switches nothing: every PoP looks dead alike.
        if self.local && self.ranking.probed() && self.ranking.basis == Basis::Distance {
            return keep(Evidence {
                note: "no PoP answers from this host; holding the current choice".to_owned(),
                ..Evidence::default()
            });
        }
        match self.challenge(&prev.evidence, current, now_ranked, ideal) {
            Challenge::None => keep(Evidence::default()),
            Challenge::Winning(evidence) => keep(evidence),
            Challenge::Won(reason) => take(reason),
        }
    }

    /// When the primary must go at once, the secondary takes its place if it still stands: its
    /// IKE SA is already up (a hot standby), so the failover needs no IKE exchange with a PoP
    /// nobody has talked to yet (make before break), and a new secondary is chosen behind it.
    /// `None`: the primary stands, or the secondary cannot take over (the ideal PoP then does).
    pub fn promote(&self, prev: &LocationSelection) -> Option<(RoleState, String)> {
        let primary = prev.primary.choice.as_ref()?;
        let Err(why) = self.still_valid(primary, None) else {
            return None;
        };
        let secondary = prev.secondary.choice.as_ref()?;
        let ranked = self.still_valid(secondary, None).ok()?;
        let mut choice = refreshed(self.ranking, secondary, ranked);
        choice.since = rfc3339(self.now);
        choice.since_unix = unix_seconds(self.now);
        let reason = format!("{why}; the secondary {} takes over", choice.pop);
        let state = RoleState {
            choice: Some(choice),
            evidence: Evidence::default(),
        };
        Some((state, reason))
    }

    /// The current choice in this round's ranking, or why it must be replaced at once.
    fn still_valid(
        &self,
        current: &Choice,
        forbidden_city: Option<&PopId>,
    ) -> Result<&RankedPop, &'static str> {
        let Some(now_ranked) = self.ranking.pops.iter().find(|p| p.pop.id() == current.pop) else {
            return Err("the current PoP left the catalogue or is no longer allowed");
        };
        if forbidden_city.is_some_and(|c| c.same_city(&current.pop)) {
            return Err("the current PoP is in the primary's city");
        }
        if self.ranking.basis == Basis::Latency && !now_ranked.reachable {
            return Err("the current PoP stopped answering");
        }
        Ok(now_ranked)
    }

    /// The anti-flap rule: a challenger must beat the current choice by at least
    /// `switch_min_improvement_ms` AND `switch_min_improvement_ratio`, in
    /// `switch_after_cycles` consecutive rounds, the same challenger each time.
    fn challenge(
        &self,
        evidence: &Evidence,
        current: &Choice,
        now_ranked: &RankedPop,
        ideal: Option<&RankedPop>,
    ) -> Challenge {
        let settings = self.settings;
        let Some(challenger) = ideal.filter(|p| p.pop.id() != current.pop) else {
            return Challenge::None;
        };
        let (Some(cur), Some(new)) = (now_ranked.score, challenger.score) else {
            return Challenge::None;
        };
        let improvement = cur - new;
        let enough_ratio = improvement >= settings.switch_min_improvement_ratio * cur;
        // The ms threshold only means something when scores are ms.
        let enough_ms = self.ranking.basis == Basis::Distance
            || improvement >= settings.switch_min_improvement_ms;
        if !(enough_ratio && enough_ms && improvement > 0.0) {
            return Challenge::None;
        }
        let key = challenger.pop.id();
        let wins = if evidence.challenger.as_ref() == Some(&key) {
            evidence.wins.saturating_add(1)
        } else {
            1
        };
        if wins >= settings.switch_after_cycles {
            return Challenge::Won(format!(
                "{key} beat {} by {improvement:.1} ({:.0}%) for {wins} cycles",
                current.pop,
                improvement / cur * 100.0
            ));
        }
        Challenge::Winning(Evidence {
            challenger: Some(key),
            wins,
            improvement_ms: Some(improvement),
            note: format!(
                "challenger has won {wins} of {} cycles",
                settings.switch_after_cycles
            ),
        })
    }
}

/// The current choice with this round's figures, at the same endpoint while it answers (or
/// while nothing of the PoP answers), else at the PoP's best endpoint now.
fn refreshed(ranking: &Ranking, current: &Choice, now_ranked: &RankedPop) -> Choice {
    let mut kept = current.clone();
    kept.score = now_ranked.score;
    kept.rtt_ms = now_ranked.rtt.map(|s| s.median.as_secs_f64() * 1000.0);
    let same_endpoint = now_ranked
        .endpoints
        .iter()
        .find(|e| e.ip == current.ip && *e.fqdn == *current.fqdn);
    let endpoint_ok = same_endpoint
        .is_some_and(|e| ranking.probe(e).is_some_and(|p| p.reachable()) || !now_ranked.reachable);
    if !endpoint_ok {
        if let Some(best) = now_ranked.best_endpoint() {
            kept.fqdn = best.fqdn.to_string();
            kept.ip = best.ip;
        }
    }
    kept
}
