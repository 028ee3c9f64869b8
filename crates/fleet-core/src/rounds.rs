//! Redraft rounds: what each pass of a review with `on_flag` raised, which
//! of the previous pass's flags the redraft answered, which remain, and the
//! one line an approver reads first ("1 of 1 redrafts used; 1 high flag
//! remains").
//!
//! Matching rule: flag ids (`F1`, ...) are only stable within one review,
//! so a flag of one round is the same flag as one of the round before when
//! their claims are equal after [`claim_key`] (lower case, every run of
//! characters that are not letters or digits read as one space, trimmed).
//! Severity and evidence may change between rounds; the claim is what the
//! reviewer says is wrong. Each earlier flag matches at most one later flag.

use crate::config::OnFlag;
use crate::flags::{Flag, FlagSet, FlagSeverity};
use serde::Serialize;
use std::collections::HashMap;

/// A flag raised in a round, and the id it had in the round before when it
/// was raised there too (then it *remains*; otherwise it is new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundFlag {
    #[serde(flatten)]
    pub flag: Flag,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was: Option<String>,
}

/// One pass of the review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Round {
    /// 1, 2, ...
    pub number: u32,
    /// Everything the review raised in this round, in its order.
    pub raised: Vec<RoundFlag>,
    /// The previous round's flags this round did not raise again.
    pub answered: Vec<Flag>,
}

impl Round {
    /// The previous round's flags raised again.
    pub fn remaining(&self) -> impl Iterator<Item = &RoundFlag> {
        self.raised.iter().filter(|f| f.was.is_some())
    }

    /// Flags first raised in this round.
    pub fn new_flags(&self) -> impl Iterator<Item = &RoundFlag> {
        self.raised.iter().filter(|f| f.was.is_none())
    }
}

/// The key flags are matched by across rounds (see the module docs).
pub fn claim_key(claim: &str) -> String {
    let mut key = String::with_capacity(claim.len());
    let mut gap = false;
    for c in claim.chars() {
        if c.is_alphanumeric() {
            if gap && !key.is_empty() {
                key.push(' ');
            }
            gap = false;
            key.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    key
}

/// The rounds of one review, from its flag sets in the order it wrote them.
pub fn rounds(sets: &[FlagSet]) -> Vec<Round> {
    let mut out: Vec<Round> = Vec::with_capacity(sets.len());
    let mut previous: &[Flag] = &[];
    for (i, set) in sets.iter().enumerate() {
        // Unmatched earlier flags by key, in their order.
        let mut open: HashMap<String, Vec<usize>> = HashMap::new();
        for (j, f) in previous.iter().enumerate().rev() {
            open.entry(claim_key(&f.claim)).or_default().push(j);
        }
        let mut matched = vec![false; previous.len()];
        let raised = set
            .flags
            .iter()
            .map(|f| {
                let was = open
                    .get_mut(&claim_key(&f.claim))
                    .and_then(|js| js.pop())
                    .map(|j| {
                        matched[j] = true;
                        previous[j].id.clone()
                    });
                RoundFlag {
                    flag: f.clone(),
                    was,
                }
            })
            .collect();
        let answered = previous
            .iter()
            .zip(&matched)
            .filter(|(_, m)| !**m)
            .map(|(f, _)| f.clone())
            .collect();
        out.push(Round {
            number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            raised,
            answered,
        });
        previous = &set.flags;
    }
    out
}

/// Where a redraft loop stands after its last round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Redrafts sent back so far (the run state's count).
    pub used: u32,
    pub max: u32,
    /// The `on_flag.severity` bar.
    pub bar: FlagSeverity,
    /// Flags of the last round at or above the bar.
    pub open: usize,
    /// Flags of the last round below it.
    pub below: usize,
}

impl Outcome {
    /// `None` until the review has written a round.
    pub fn of(rounds: &[Round], on_flag: &OnFlag, used: u32) -> Option<Outcome> {
        let last = rounds.last()?;
        let bar = on_flag.bar();
        let open = last
            .raised
            .iter()
            .filter(|f| f.flag.severity.at_least(bar))
            .count();
        Some(Outcome {
            used,
            max: on_flag.max,
            bar,
            open,
            below: last.raised.len() - open,
        })
    }

    /// Every redraft was used and flags at the bar remain: the run went to
    /// the gate with them open.
    pub fn bound_reached(&self) -> bool {
        self.open > 0 && self.used >= self.max
    }

    /// Flags at the bar remain while redrafts are left: a redraft is due
    /// (or under way).
    pub fn redrafting(&self) -> bool {
        self.open > 0 && self.used < self.max
    }

    /// The line an approver reads first.
    pub fn line(&self) -> String {
        let noun = match self.bar {
            FlagSeverity::High => "high flag",
            FlagSeverity::Medium => "high or medium flag",
            FlagSeverity::Low => "flag",
        };
        if self.open > 0 {
            let (s, verb) = if self.open == 1 {
                ("", "remains")
            } else {
                ("s", "remain")
            };
            return format!(
                "{} of {} redrafts used; {} {noun}{s} {verb}",
                self.used, self.max, self.open
            );
        }
        // (With the bar at low, every flag is at it: `below` is 0.)
        let rest = match self.below {
            0 => "no flags remain".to_owned(),
            1 => format!("no {noun}s remain (1 lower flag stands)"),
            n => format!("no {noun}s remain ({n} lower flags stand)"),
        };
        match self.used {
            0 => format!("no redraft needed; {rest}"),
            1 => format!("converged after 1 redraft; {rest}"),
            n => format!("converged after {n} redrafts; {rest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(id: &str, severity: FlagSeverity, claim: &str) -> Flag {
        Flag {
            id: id.into(),
            severity,
            claim: claim.into(),
            evidence: Vec::new(),
        }
    }

    fn set(flags: Vec<Flag>) -> FlagSet {
        FlagSet {
            step: "risk-review".into(),
            flags,
        }
    }

    fn on_flag(max: u32, severity: Option<FlagSeverity>) -> OnFlag {
        OnFlag {
            redraft: "readiness".into(),
            max,
            severity,
        }
    }

    fn ids<'a>(flags: impl Iterator<Item = &'a Flag>) -> Vec<&'a str> {
        flags.map(|f| f.id.as_str()).collect()
    }

    use FlagSeverity::{High, Low, Medium};

    #[test]
    fn claims_match_by_words_not_by_case_punctuation_or_id() {
        assert_eq!(
            claim_key("  The rollback plan is TBD!"),
            "the rollback plan is tbd"
        );
        assert_eq!(
            claim_key("the rollback-plan is: tbd"),
            "the rollback plan is tbd"
        );
        assert_ne!(claim_key("rollback plan"), claim_key("rollback plans"));
        assert_eq!(claim_key("—"), "");
    }

    #[test]
    fn a_converging_loop_answers_every_flag() {
        let r = rounds(&[
            set(vec![
                flag("F1", High, "The rollback plan is TBD."),
                flag("F2", Low, "The load test was skipped."),
            ]),
            set(vec![]),
        ]);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].number, 1);
        assert!(r[0].answered.is_empty());
        assert_eq!(r[0].new_flags().count(), 2);
        assert_eq!(r[1].number, 2);
        assert!(r[1].raised.is_empty());
        assert_eq!(ids(r[1].answered.iter()), ["F1", "F2"]);
        let o = Outcome::of(&r, &on_flag(2, None), 1).expect("a round");
        assert_eq!((o.open, o.below, o.bound_reached()), (0, 0, false));
        assert_eq!(o.line(), "converged after 1 redraft; no flags remain");
    }

    #[test]
    fn a_bounded_loop_keeps_what_was_raised_again_under_a_new_id() {
        let r = rounds(&[
            set(vec![
                flag("F1", High, "The rollback plan is TBD."),
                flag("F2", High, "Security sign-off is pending."),
            ]),
            // Renumbered: the sign-off is F1 now, and a new low flag.
            set(vec![
                flag("F1", High, "security sign-off is pending"),
                flag("F2", Low, "The changelog has a typo."),
            ]),
        ]);
        let remaining: Vec<(&str, Option<&str>)> = r[1]
            .remaining()
            .map(|f| (f.flag.id.as_str(), f.was.as_deref()))
            .collect();
        assert_eq!(remaining, [("F1", Some("F2"))]);
        assert_eq!(ids(r[1].answered.iter()), ["F1"]);
        assert_eq!(r[1].answered[0].claim, "The rollback plan is TBD.");
        assert_eq!(
            r[1].new_flags()
                .map(|f| f.flag.id.as_str())
                .collect::<Vec<_>>(),
            ["F2"]
        );
        let o = Outcome::of(&r, &on_flag(1, None), 1).expect("a round");
        assert!(o.bound_reached());
        assert_eq!(o.line(), "1 of 1 redrafts used; 1 high flag remains");
        // With the bar at low, the typo counts too.
        let o = Outcome::of(&r, &on_flag(2, Some(Low)), 2).expect("a round");
        assert_eq!(o.line(), "2 of 2 redrafts used; 2 flags remain");
    }

    #[test]
    fn a_repeated_claim_matches_once_per_earlier_flag() {
        let r = rounds(&[
            set(vec![flag("F1", Medium, "Gap"), flag("F2", Medium, "Gap")]),
            set(vec![
                flag("F1", Medium, "gap"),
                flag("F2", Medium, "gap"),
                flag("F3", Medium, "gap"),
            ]),
        ]);
        let was: Vec<Option<&str>> = r[1].raised.iter().map(|f| f.was.as_deref()).collect();
        assert_eq!(was, [Some("F1"), Some("F2"), None]);
        assert!(r[1].answered.is_empty());
    }

    #[test]
    fn the_line_counts_at_the_bar_and_names_what_stands_below_it() {
        let two_high = rounds(&[set(vec![flag("F1", High, "a"), flag("F2", High, "b")])]);
        let o = Outcome::of(&two_high, &on_flag(2, None), 2).expect("a round");
        assert_eq!(o.line(), "2 of 2 redrafts used; 2 high flags remain");
        let lower = rounds(&[set(vec![flag("F1", Medium, "a"), flag("F2", Low, "b")])]);
        let o = Outcome::of(&lower, &on_flag(2, None), 0).expect("a round");
        assert_eq!(
            o.line(),
            "no redraft needed; no high flags remain (2 lower flags stand)"
        );
        let o = Outcome::of(&lower, &on_flag(3, Some(Medium)), 1).expect("a round");
        assert_eq!(
            o.line(),
            "1 of 3 redrafts used; 1 high or medium flag remains"
        );
        assert!(o.redrafting() && !o.bound_reached());
        let o = Outcome::of(&lower, &on_flag(2, None), 2).expect("a round");
        assert_eq!(
            o.line(),
            "converged after 2 redrafts; no high flags remain (2 lower flags stand)"
        );
        assert_eq!(Outcome::of(&[], &on_flag(1, None), 0), None);
    }
}
