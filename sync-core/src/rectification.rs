//! The rectification loop (整改闭环) — plan, start, report done, verify,
//! reopen — as a hazard's list of steps, appended and never rewritten, and
//! what the steps add up to. Pure: the same steps give the same [`Loop`] on
//! every replica.
//!
//! Each step names the steps its author saw last (`after`), so the steps
//! form a graph carried in the data itself. The state before a step is the
//! merge of the states after the steps it names; at every door a step is
//! judged against that state ([`admit`]), which is the hazard as of the
//! change's dependencies, never against what another device did meanwhile.
//! Concurrent steps both stay. Where their readings disagree the graver one
//! holds — not closed over closed (a failed verification over a passed
//! one), the stricter plan (immediate, then the earlier deadline) — and the
//! hazard is listed as a [`Dispute`] until a step that saw both decides.
//!
//! Hazards recorded before the steps carry the loop as fields
//! ([`Rectification`]): they are read as an implicit first state, the same
//! on every replica, and never rewritten.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{
    Hazard, Rectification, RectificationMode, RectificationStatus, Step, StepKind, VerifyResult, calendar_date,
};
use crate::text::same_person;
use crate::zone::Zone;

/// Who records a step: the holder of this device's credential and its role
/// (`inspector`, `enterprise`, …; `None` before enrollment).
#[derive(Clone, Debug)]
pub struct Signer {
    /// The holder's name.
    pub name: String,
    /// The credential's role.
    pub role: Option<String>,
}

/// The plan in force (整改要求).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Immediate or by deadline.
    pub mode: RectificationMode,
    /// The deadline (YYYY-MM-DD), for mode deadline.
    pub deadline: Option<String>,
    /// The responsible person.
    pub owner: String,
    /// The unit responsible (整改责任单位), if named.
    pub responsible_unit: String,
    /// The measures.
    pub measures: String,
    /// Interim controls.
    pub interim_control: String,
}

impl Plan {
    /// How strict it is, strictest first: immediate, then by deadline.
    fn strictness(&self) -> (bool, Option<&str>) {
        (self.mode != RectificationMode::Immediate, self.deadline.as_deref())
    }

    fn reading(&self) -> String {
        match &self.deadline {
            Some(d) => format!("{}，期限 {d}", self.mode.label()),
            None => self.mode.label().to_owned(),
        }
    }
}

/// A report that the rectification was done.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Report {
    /// Who carried it out.
    pub rectified_by: String,
    /// When it was reported (RFC 3339), if recorded.
    pub at: Option<String>,
    /// Who recorded the report, when it was an enterprise account: that
    /// device's holder may not verify it either.
    pub enterprise_author: Option<String>,
}

/// A verification (复查).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Who verified: the holder of the signing device.
    pub verifier: String,
    /// When (RFC 3339), if recorded.
    pub at: Option<String>,
    /// The verdict.
    pub result: VerifyResult,
    /// The opinion.
    pub note: String,
}

/// Where a hazard's loop stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct State {
    /// The status (整改状态).
    pub status: RectificationStatus,
    /// The plan in force, once planned.
    pub plan: Option<Plan>,
    /// The reports of the current round (the rectifiers may not verify).
    pub reports: Vec<Report>,
    /// The last verification.
    pub verification: Option<Verification>,
    /// The steps that set the status, the plan and the verification above
    /// (`None`: the implicit first state): where branches meet, only what
    /// one branch set after the other counts as later.
    #[serde(skip)]
    set_by: [Option<String>; 3],
}

impl State {
    /// When the hazard was closed: the passed verification that closed it
    /// (`None` while it is not closed). The rectification KPI counts a
    /// hazard closed by a cut-off when this is not later than the cut-off.
    pub fn closed_at(&self) -> Option<&str> {
        let v = self.verification.as_ref().filter(|v| v.result == VerifyResult::Pass);
        v.filter(|_| self.status == RectificationStatus::Closed).and_then(|v| v.at.as_deref())
    }

    /// What may come next, in Chinese, with the `field rectify` command.
    pub fn next(&self) -> &'static str {
        use RectificationStatus::*;
        match (self.status, &self.plan) {
            (Open, None) => "下达整改要求（field rectify plan）",
            (Open, Some(_)) => "开始整改（field rectify start），或调整整改要求（plan）",
            (Rectifying, _) => "整改完成后提交复查（field rectify submit），或调整整改要求（plan）",
            (AwaitingVerification, _) => "由整改人以外的人复查（field rectify verify）",
            (Closed, _) => "已销号；如发现问题可重新打开（field rectify reopen）",
        }
    }
}

/// Two concurrent readings of one part of the loop that disagree: listed
/// for review until a step that saw both decides. The graver one is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dispute {
    /// Which part: `status`, `plan` or `result`.
    pub field: &'static str,
    /// Its Chinese name.
    pub label: &'static str,
    /// The competing readings, sorted.
    pub values: Vec<String>,
    /// The reading shown until decided (the graver).
    pub shown: String,
}

impl std::fmt::Display for Dispute {
    /// `整改期限：2026-11-30 / 2026-12-05，暂按较严的“2026-11-30”`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}：{}，暂按较严的“{}”", self.label, self.values.join(" / "), self.shown)
    }
}

/// One step as the loop took it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    /// The step's id.
    pub id: String,
    /// The step.
    pub step: Step,
    /// Whether it counted: a step that breaks the rules at its own point
    /// (only in a document no door let in) is shown but changes nothing.
    pub counted: bool,
}

/// A hazard's loop, derived from its steps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Loop {
    /// Where it stands.
    pub state: State,
    /// The status the hazard had recorded before the steps, if it had one
    /// (read as the implicit first state).
    pub earlier: Option<RectificationStatus>,
    /// The steps in the order taken: each after the steps it names, ties
    /// by id.
    pub history: Vec<Entry>,
    /// The steps no later step names: what a new step follows.
    pub heads: Vec<String>,
    /// Disagreements of concurrent steps waiting for a decision.
    pub disputes: Vec<Dispute>,
}

impl Loop {
    /// The loop of `r`.
    pub fn of(r: &Rectification) -> Loop {
        let initial = initial(r);
        let mut after: BTreeMap<&str, State> = BTreeMap::new();
        let mut ancestors: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut history = Vec::with_capacity(r.steps.len());
        for id in order(&r.steps) {
            let step = &r.steps[id];
            let parents: Vec<&str> = step.after.iter().map(String::as_str).filter(|p| after.contains_key(p)).collect();
            let mut mine = BTreeSet::new();
            for p in &parents {
                mine.insert(*p);
                mine.extend(ancestors.get(p).into_iter().flatten());
            }
            let (before, _) = merge(&parents, &after, &ancestors, &initial);
            let counted = admit(&before, step).is_ok();
            after.insert(id, if counted { apply(before, id, step) } else { before });
            ancestors.insert(id, mine);
            history.push(Entry { id: id.to_owned(), step: step.clone(), counted });
        }
        let heads = heads(&r.steps);
        let tips: Vec<&str> = heads.iter().map(String::as_str).collect();
        let (state, disputes) = merge(&tips, &after, &ancestors, &initial);
        let earlier = (initial != State::default()).then_some(initial.status);
        Loop { state, earlier, history, heads, disputes }
    }
}

/// The implicit first state: the fields of a hazard recorded before steps.
fn initial(r: &Rectification) -> State {
    let plan = r.mode.map(|mode| Plan {
        mode,
        deadline: r.deadline.clone(),
        owner: r.owner.clone(),
        responsible_unit: String::new(),
        measures: r.measures.clone(),
        interim_control: r.interim_control.clone(),
    });
    let reports = r
        .rectified_by
        .iter()
        .map(|by| Report { rectified_by: by.clone(), at: r.rectified_at.clone(), enterprise_author: None })
        .collect();
    let verification = r.verifier.as_ref().map(|verifier| Verification {
        verifier: verifier.clone(),
        at: r.verified_at.clone(),
        result: if r.status == RectificationStatus::Closed { VerifyResult::Pass } else { VerifyResult::Fail },
        note: r.verification_note.clone(),
    });
    State { status: r.status, plan, reports, verification, set_by: Default::default() }
}

/// The step ids in the order taken: each after every step it names that
/// exists, ties (and anything a malformed document makes circular) by id.
fn order(steps: &BTreeMap<String, Step>) -> Vec<&str> {
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut followers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, step) in steps {
        let parents: BTreeSet<&str> =
            step.after.iter().map(String::as_str).filter(|p| steps.contains_key(*p) && p != id).collect();
        waiting.insert(id, parents.len());
        for p in parents {
            followers.entry(p).or_default().push(id);
        }
    }
    let mut ready: BTreeSet<&str> = waiting.iter().filter(|(_, n)| **n == 0).map(|(id, _)| *id).collect();
    let mut out = Vec::with_capacity(steps.len());
    while let Some(id) = ready.pop_first() {
        out.push(id);
        waiting.remove(id);
        for f in followers.get(id).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(f) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(f);
                }
            }
        }
    }
    out.extend(waiting.keys());
    out
}

/// The steps no other step names, sorted.
pub fn heads(steps: &BTreeMap<String, Step>) -> Vec<String> {
    let named: BTreeSet<&str> = steps.values().flat_map(|s| s.after.iter().map(String::as_str)).collect();
    steps.keys().filter(|id| !named.contains(id.as_str())).cloned().collect()
}

/// The state where the branches ending at `tips` meet, and where they
/// disagree. With no branch, the implicit first state.
fn merge(
    tips: &[&str],
    after: &BTreeMap<&str, State>,
    ancestors: &BTreeMap<&str, BTreeSet<&str>>,
    initial: &State,
) -> (State, Vec<Dispute>) {
    let states: Vec<&State> = tips.iter().filter_map(|t| after.get(t)).collect();
    let Some(first) = states.first() else { return (initial.clone(), Vec::new()) };
    if states.iter().all(|s| *s == *first) {
        return ((*first).clone(), Vec::new());
    }
    // For each part, the branches that set it last: a part one branch set
    // before another set it again is superseded, not disputed.
    let latest = |part: usize| -> Vec<&State> {
        let setters: BTreeSet<Option<&str>> = states.iter().map(|s| s.set_by[part].as_deref()).collect();
        let superseded = |id: Option<&str>| {
            setters
                .iter()
                .flatten()
                .any(|other| id.is_none_or(|id| ancestors.get(other).is_some_and(|a| a.contains(id))))
        };
        let mut seen = BTreeSet::new();
        states
            .iter()
            .copied()
            .filter(|s| !superseded(s.set_by[part].as_deref()) && seen.insert(s.set_by[part].clone()))
            .collect()
    };
    let mut disputes = Vec::new();
    let mut dispute = |field, label, values: BTreeSet<String>, shown: String| {
        if values.len() > 1 {
            disputes.push(Dispute { field, label, values: values.into_iter().collect(), shown });
        }
    };
    // Not closed over closed: the least advanced status.
    let moved = latest(0);
    let by_status = moved.iter().min_by_key(|s| s.status).copied().unwrap_or(first);
    let values = moved.iter().map(|s| s.status.label().to_owned()).collect();
    dispute("status", "整改状态", values, by_status.status.label().into());
    // The strictest plan: immediate, then the earliest deadline.
    let planned = latest(1);
    let plans = planned.iter().filter(|s| s.plan.is_some());
    let by_plan =
        plans.clone().min_by(|a, b| a.plan.as_ref().map(Plan::strictness).cmp(&b.plan.as_ref().map(Plan::strictness)));
    let shown = by_plan.and_then(|s| s.plan.as_ref()).map(Plan::reading).unwrap_or_default();
    dispute("plan", "整改期限", plans.filter_map(|s| s.plan.as_ref().map(Plan::reading)).collect(), shown);
    // A failed verification over a passed one.
    let verified = latest(2);
    let verifications = verified.iter().filter(|s| s.verification.is_some());
    let by_result =
        verifications.clone().min_by_key(|s| s.verification.as_ref().map(|v| v.result == VerifyResult::Pass));
    let shown =
        by_result.and_then(|s| s.verification.as_ref()).map(|v| v.result.label().to_owned()).unwrap_or_default();
    let values = verifications.filter_map(|s| s.verification.as_ref().map(|v| v.result.label().to_owned())).collect();
    dispute("result", "复查结论", values, shown);
    let reports: BTreeSet<Report> = states.iter().flat_map(|s| s.reports.iter().cloned()).collect();
    let state = State {
        status: by_status.status,
        plan: by_plan.and_then(|s| s.plan.clone()),
        reports: reports.into_iter().collect(),
        verification: by_result.and_then(|s| s.verification.clone()),
        set_by: [
            by_status.set_by[0].clone(),
            by_plan.and_then(|s| s.set_by[1].clone()),
            by_result.and_then(|s| s.set_by[2].clone()),
        ],
    };
    (state, disputes)
}

/// The state after `step` (`id`), which [`admit`] let in.
fn apply(mut state: State, id: &str, step: &Step) -> State {
    let set = |part: &mut Option<String>| *part = Some(id.to_owned());
    match step.kind {
        StepKind::Plan => {
            state.plan = step.mode.map(|mode| Plan {
                mode,
                deadline: step.deadline.clone(),
                owner: step.owner.clone(),
                responsible_unit: step.responsible_unit.clone(),
                measures: step.measures.clone(),
                interim_control: step.interim_control.clone(),
            });
            set(&mut state.set_by[1]);
        }
        StepKind::Start | StepKind::Reopen => {
            state.status = RectificationStatus::Rectifying;
            set(&mut state.set_by[0]);
        }
        StepKind::Done => {
            state.status = RectificationStatus::AwaitingVerification;
            let enterprise = step.author_role.as_deref() == Some("enterprise");
            state.reports = vec![Report {
                rectified_by: step.rectified_by.clone().unwrap_or_default(),
                at: Some(step.at.clone()),
                enterprise_author: enterprise.then(|| step.author.clone()),
            }];
            set(&mut state.set_by[0]);
        }
        StepKind::Verify => {
            let result = step.result.unwrap_or(VerifyResult::Fail);
            state.status = match result {
                VerifyResult::Pass => RectificationStatus::Closed,
                VerifyResult::Fail => RectificationStatus::Rectifying,
            };
            state.verification = Some(Verification {
                verifier: step.author.clone(),
                at: Some(step.at.clone()),
                result,
                note: step.note.clone(),
            });
            set(&mut state.set_by[0]);
            set(&mut state.set_by[2]);
        }
    }
    state
}

/// Whether `step` may follow `state`: the order of the loop and who may
/// verify. Refusals name the hazard's current state and the step it
/// accepts next. What the step's own fields must hold is [`check_step`].
pub fn admit(state: &State, step: &Step) -> Result<(), String> {
    use RectificationStatus::*;
    let refuse = |why: String| Err(format!("隐患当前为“{}”，{why}；下一步可：{}", state.status.label(), state.next()));
    match (step.kind, state.status) {
        (StepKind::Reopen, Closed) => Ok(()),
        (kind, Closed) => refuse(format!("已销号的隐患不能再{}，除非先重新打开", kind.label())),
        (StepKind::Plan, Open | Rectifying) => Ok(()),
        (StepKind::Start, Open) if state.plan.is_some() => Ok(()),
        (StepKind::Start, Open) => refuse("尚未下达整改要求，不能开始整改".into()),
        (StepKind::Done, Rectifying) => Ok(()),
        (StepKind::Verify, AwaitingVerification) => {
            for report in &state.reports {
                if same_person(&step.author, &report.rectified_by) {
                    return Err(format!("复查人 {} 就是整改人，复查须由整改人以外的人进行", step.author));
                }
                if report.enterprise_author.as_deref().is_some_and(|a| same_person(&step.author, a)) {
                    return Err(format!("复查人 {} 是报告整改完成的企业账号持有人，复查须由他人进行", step.author));
                }
            }
            Ok(())
        }
        (kind, _) => refuse(format!("不能{}", kind.label())),
    }
}

/// Checks what a step's own fields must hold: a plan has a mode, a
/// deadline plan a deadline not before the day the hazard was found
/// (`found_on`, YYYY-MM-DD, local); a report names the rectifier; a
/// verification its verdict; a reopening its reason.
pub fn check_step(step: &Step, found_on: Option<&str>) -> Result<(), String> {
    match step.kind {
        StepKind::Plan => {
            let Some(mode) = step.mode else { return Err("整改要求必须写明整改方式".into()) };
            if step.owner.trim().is_empty() || step.measures.trim().is_empty() {
                return Err("整改要求必须写明整改责任人（--owner）和整改措施（--measures）".into());
            }
            match (&step.deadline, mode) {
                (None, RectificationMode::Deadline) => Err("限期整改必须填写整改期限（--deadline）".into()),
                (Some(d), _) if calendar_date(d).is_none() => {
                    Err(format!("整改期限“{d}”格式无效（应为 YYYY-MM-DD，如 2026-11-23）"))
                }
                (Some(d), _) if found_on.is_some_and(|f| d.as_str() < f) => {
                    Err(format!("整改期限 {d} 早于隐患的发现日期 {}", found_on.unwrap_or_default()))
                }
                _ => Ok(()),
            }
        }
        StepKind::Done if step.rectified_by.as_deref().is_none_or(|b| b.trim().is_empty()) => {
            Err("整改完成必须写明整改人（--by）".into())
        }
        StepKind::Verify if step.result.is_none() => Err("复查必须给出结论：pass（通过）或 fail（不通过）".into()),
        StepKind::Reopen if step.note.trim().is_empty() => Err("重新打开必须说明原因（--reason）".into()),
        _ => Ok(()),
    }
}

/// The photos taken after rectification (SHA-256 → file name): those the
/// earlier fields kept and those of every report that it was done.
pub fn photos_after(r: &Rectification) -> impl Iterator<Item = (&String, &String)> {
    let reported = r.steps.values().filter(|s| s.kind == StepKind::Done).flat_map(|s| s.photos.iter());
    r.photos_after.iter().chain(reported)
}

/// The day a hazard was found, as the loop's rules read it (a deadline is
/// not before it): the day recorded with it, in its campaign's zone; for a
/// record made before that was kept, the day in China Standard Time,
/// [`Zone`]'s default.
pub fn found_on(h: &Hazard) -> Option<String> {
    match h.found_on.is_empty() {
        false => Some(h.found_on.clone()),
        true => Zone::default().day(&h.found_at),
    }
}

/// The rectification rate (整改率) of some hazards by a cut-off, with its
/// definition beside the number.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rate {
    /// Hazards closed by the cut-off (numerator).
    pub closed: usize,
    /// Hazards found by the cut-off, not deleted (denominator).
    pub found: usize,
    /// `closed / found`; `None` with nothing found.
    pub rate: Option<f64>,
    /// The definition, in Chinese.
    pub definition: String,
}

impl Rate {
    /// The rate of `hazards` (found at, deleted, loop) as of `cut_off`
    /// (RFC 3339): a hazard counts as rectified when its derived status is
    /// closed and the passed verification that closed it is not later than
    /// the cut-off. A hazard reopened since counts as not rectified; one that
    /// failed verification and then passed counts from the pass.
    pub fn of<'a>(hazards: impl IntoIterator<Item = (&'a str, bool, &'a Loop)>, cut_off: &str) -> Rate {
        let (mut found, mut closed) = (0, 0);
        for (found_at, deleted, l) in hazards {
            if deleted || found_at > cut_off {
                continue;
            }
            found += 1;
            closed += usize::from(l.state.closed_at().is_some_and(|at| at <= cut_off));
        }
        Rate {
            closed,
            found,
            rate: (found > 0).then(|| closed as f64 / found as f64),
            definition: format!(
                "分子：截至 {cut_off} 已销号（复查通过且复查时间不晚于截止时间；其后重新打开的不计）的隐患条数；分母：截至 {cut_off} 发现并记录、未删除的隐患条数"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::dossier::{add_hazard, add_step, create, hazard, tests::sample_hazard};
    use crate::doc::{ModelError, edit};
    use crate::ids::{DocId, EntityId};
    use crate::sync::batch::Arrived;
    use automerge::{ActorId, Automerge, ReadDoc};
    use proptest::prelude::*;

    fn hid() -> EntityId {
        EntityId::new(1, 1)
    }

    fn signer(name: &str) -> Signer {
        Signer { name: name.into(), role: Some("inspector".into()) }
    }

    fn step(kind: StepKind) -> Step {
        Step::new(kind)
    }

    fn plan(deadline: &str) -> Step {
        Step {
            mode: Some(RectificationMode::Deadline),
            deadline: Some(deadline.into()),
            owner: "王五".into(),
            measures: "补设防护栏杆".into(),
            ..step(StepKind::Plan)
        }
    }

    fn done(by: &str) -> Step {
        Step { rectified_by: Some(by.into()), ..step(StepKind::Done) }
    }

    fn verify(result: VerifyResult) -> Step {
        Step { result: Some(result), ..step(StepKind::Verify) }
    }

    fn dossier(actor: u8) -> Automerge {
        let campaign = DocId::new_campaign([3; 16]);
        let mut doc = create(&campaign, &"91640200MA76XYW123".parse().unwrap()).unwrap();
        doc.set_actor(ActorId::from(&[actor; 16][..]));
        edit(&mut doc, 1, |tx| add_hazard(tx, &hid(), &sample_hazard("临边无防护"))).unwrap();
        doc
    }

    /// Records `s` as `who`; the step's id counts up per document.
    fn take(doc: &mut Automerge, who: &str, s: Step) -> Result<Loop, ModelError> {
        let n = hazard(doc, &hid()).unwrap().rectification.steps.len() as u128;
        let actor = doc.get_actor().to_bytes()[0] as u128;
        let id = EntityId::new(2, actor << 32 | n);
        edit(doc, 2, |tx| add_step(tx, &hid(), &id, s, &signer(who), format!("2026-12-0{}T08:00:00Z", 1 + n % 9)))
            .map(|c| c.value)
    }

    fn state(doc: &Automerge) -> Loop {
        Loop::of(&hazard(doc, &hid()).unwrap().rectification)
    }

    /// A deadline is checked against the day recorded with the finding, in
    /// its campaign's zone: found at 17:00 UTC on 12-07 is 12-07 in Pago
    /// Pago but 12-08 in Beijing, the day read for a record without one.
    /// The edit and the validator (every door) read it alike; a recorded
    /// day that is no zone's day of the finding is refused.
    #[test]
    fn the_finding_day_is_the_one_recorded_with_it() {
        let found = |day: &str| {
            let mut doc = dossier(1);
            let h = crate::model::Hazard {
                found_at: "2026-12-07T17:00:00Z".into(),
                found_on: day.into(),
                ..sample_hazard("临边无防护")
            };
            edit(&mut doc, 1, |tx| add_hazard(tx, &EntityId::new(1, 2), &h)).map(|_| doc)
        };
        let other = || EntityId::new(1, 2);
        let plan_on = |doc: &mut Automerge, deadline: &str| {
            edit(doc, 2, |tx| {
                add_step(
                    tx,
                    &other(),
                    &EntityId::new(2, 1),
                    plan(deadline),
                    &signer("张三"),
                    "2026-12-07T18:00:00Z".into(),
                )
            })
        };
        let mut pago_pago = found("2026-12-07").unwrap();
        plan_on(&mut pago_pago, "2026-12-07").unwrap();
        let id = DocId::dossier(&DocId::new_campaign([3; 16]), &"91640200MA76XYW123".parse().unwrap());
        crate::validate::document(&id, &pago_pago).unwrap();
        let err = plan_on(&mut found("").unwrap(), "2026-12-07").unwrap_err().to_string();
        assert!(err.contains("早于隐患的发现日期 2026-12-08"), "{err}");
        let err = plan_on(&mut found("2026-12-07").unwrap(), "2026-12-06").unwrap_err().to_string();
        assert!(err.contains("早于隐患的发现日期 2026-12-07"), "{err}");
        let err = found("2026-12-10").map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("与发现时间"), "{err}");
    }

    /// The six commands of the issue, each refused with the state and the
    /// step it accepts next, and the record unchanged.
    #[test]
    fn skipped_repeated_and_rewriting_steps_are_refused() {
        let mut doc = dossier(1);
        let refused = |doc: &mut Automerge, who: &str, s: Step, expect: &str| {
            let heads = doc.get_heads();
            let err = take(doc, who, s).unwrap_err().to_string();
            assert!(err.contains(expect), "expected “{expect}”, got: {err}");
            if expect.starts_with("隐患当前") {
                assert!(err.contains("下一步可"), "{err}");
            }
            assert_eq!(doc.get_heads(), heads);
        };
        // Submit with no plan and no start.
        refused(&mut doc, "张三", done("王五"), "隐患当前为“未整改”，不能整改完成");
        take(&mut doc, "张三", plan("2026-12-10")).unwrap();
        refused(&mut doc, "张三", done("王五"), "隐患当前为“未整改”，不能整改完成");
        take(&mut doc, "张三", step(StepKind::Start)).unwrap();
        take(&mut doc, "张三", done("王五")).unwrap();
        // Submit again: the first report stands.
        refused(&mut doc, "张三", done("王五"), "隐患当前为“待复查”，不能整改完成");
        // The verifier is the signing device's holder, compared as a person.
        refused(&mut doc, "王五\u{200b}", verify(VerifyResult::Pass), "复查人 王五\u{200b} 就是整改人");
        refused(&mut doc, "王 五", verify(VerifyResult::Pass), "就是整改人");
        take(&mut doc, "钱七", verify(VerifyResult::Fail)).unwrap();
        // Verify while rectifying again.
        refused(&mut doc, "钱七", verify(VerifyResult::Fail), "隐患当前为“整改中”，不能复查");
        take(&mut doc, "张三", done("王五")).unwrap();
        let lp = take(&mut doc, "钱七", verify(VerifyResult::Pass)).unwrap();
        assert_eq!(lp.state.status, RectificationStatus::Closed);
        // On a closed hazard: no verify, no plan — only a reopening.
        refused(&mut doc, "钱七", verify(VerifyResult::Pass), "已销号的隐患不能再复查");
        refused(&mut doc, "张三", plan("2026-12-01"), "已销号的隐患不能再下达整改要求");
        let lp = state(&doc);
        assert_eq!(lp.history.len(), 6, "the failed verification stays in the history");
        assert!(lp.history.iter().all(|e| e.counted));
        assert_eq!(
            lp.history.iter().filter_map(|e| e.step.result).collect::<Vec<_>>(),
            [VerifyResult::Fail, VerifyResult::Pass]
        );
        let err = take(&mut doc, "张三", step(StepKind::Reopen)).unwrap_err();
        assert!(err.to_string().contains("重新打开必须说明原因"), "{err}");
        let reopened = Step { note: "复查后发现防护栏杆被拆除".into(), ..step(StepKind::Reopen) };
        assert_eq!(take(&mut doc, "张三", reopened).unwrap().state.status, RectificationStatus::Rectifying);
    }

    #[test]
    fn a_deadline_is_not_before_the_day_the_hazard_was_found() {
        let mut doc = dossier(1);
        // Found 2026-11-23T02:00Z: 10:00 on the 23rd in China.
        let err = take(&mut doc, "张三", plan("2026-11-22")).unwrap_err();
        assert!(err.to_string().contains("早于隐患的发现日期 2026-11-23"), "{err}");
        let err = take(&mut doc, "张三", Step { deadline: None, ..plan("x") }).unwrap_err();
        assert!(err.to_string().contains("限期整改必须填写整改期限"), "{err}");
        take(&mut doc, "张三", plan("2026-11-23")).unwrap();
    }

    /// Two devices act on one hazard offline: both steps stay, the graver
    /// reading holds, and a step that saw both decides.
    #[test]
    fn concurrent_steps_are_kept_and_the_graver_reading_shown() {
        let mut a = dossier(1);
        take(&mut a, "张三", plan("2026-12-10")).unwrap();
        take(&mut a, "张三", step(StepKind::Start)).unwrap();
        take(&mut a, "张三", done("王五")).unwrap();
        let mut b = a.fork().with_actor(ActorId::from(&[2u8; 16][..]));
        take(&mut a, "钱七", verify(VerifyResult::Pass)).unwrap();
        take(&mut b, "孙八", verify(VerifyResult::Fail)).unwrap();
        a.merge(&mut b.clone()).unwrap();
        b.merge(&mut a.clone()).unwrap();
        let (la, lb) = (state(&a), state(&b));
        assert_eq!(la, lb);
        assert_eq!(la.state.status, RectificationStatus::Rectifying, "fail over pass");
        assert_eq!(la.history.len(), 5);
        let fields: Vec<&str> = la.disputes.iter().map(|d| d.field).collect();
        assert_eq!(fields, ["status", "result"]);
        // Rectified again and verified by someone who saw both: decided.
        take(&mut a, "张三", done("王五")).unwrap();
        assert!(state(&a).disputes.is_empty());

        // Two deadlines: the earlier one holds until decided.
        let mut c = dossier(3);
        take(&mut c, "张三", plan("2026-12-20")).unwrap();
        let mut d = c.fork().with_actor(ActorId::from(&[4u8; 16][..]));
        take(&mut c, "张三", plan("2026-12-15")).unwrap();
        take(&mut d, "李四", plan("2026-12-05")).unwrap();
        c.merge(&mut d).unwrap();
        let lc = state(&c);
        assert_eq!(lc.state.plan.as_ref().and_then(|p| p.deadline.as_deref()), Some("2026-12-05"));
        assert_eq!(lc.disputes.len(), 1);
        assert_eq!(lc.disputes[0].shown, "限期整改，期限 2026-12-05");

        // A new plan beside a report is no dispute: the report moved the
        // status, the plan replaced the one both saw.
        let mut e = dossier(5);
        take(&mut e, "张三", plan("2026-12-20")).unwrap();
        take(&mut e, "张三", step(StepKind::Start)).unwrap();
        let mut f = e.fork().with_actor(ActorId::from(&[6u8; 16][..]));
        take(&mut e, "张三", done("王五")).unwrap();
        take(&mut f, "李四", plan("2026-12-18")).unwrap();
        e.merge(&mut f).unwrap();
        let le = state(&e);
        assert_eq!(le.state.status, RectificationStatus::AwaitingVerification);
        assert!(le.disputes.is_empty(), "{:?}", le.disputes);
        assert_eq!(le.state.plan.as_ref().and_then(|p| p.deadline.as_deref()), Some("2026-12-18"));
    }

    /// A hazard recorded before steps: its fields are the implicit first
    /// state, and two devices that add its first steps at once keep both.
    #[test]
    fn a_loop_recorded_as_fields_is_the_first_state() {
        use automerge::transaction::Transactable;
        let mut a = dossier(1);
        edit(&mut a, 2, |tx| {
            let r = crate::doc::map_at(tx, &["hazards", hid().as_str(), "rectification"])?;
            tx.delete(&r, "steps")?;
            tx.put(&r, "status", "awaiting_verification")?;
            tx.put(&r, "mode", "immediate")?;
            tx.put(&r, "rectified_by", "王五")?;
            Ok(())
        })
        .unwrap();
        let lp = state(&a);
        assert_eq!(lp.earlier, Some(RectificationStatus::AwaitingVerification));
        assert_eq!(lp.state.status, RectificationStatus::AwaitingVerification);
        let err = take(&mut a.clone(), "王五", verify(VerifyResult::Pass)).unwrap_err();
        assert!(err.to_string().contains("就是整改人"), "{err}");
        let mut b = a.fork().with_actor(ActorId::from(&[2u8; 16][..]));
        take(&mut a, "钱七", verify(VerifyResult::Pass)).unwrap();
        take(&mut b, "孙八", verify(VerifyResult::Fail)).unwrap();
        a.merge(&mut b).unwrap();
        let lp = state(&a);
        assert_eq!(lp.history.len(), 2, "both first steps are read: {lp:?}");
        assert_eq!(lp.state.status, RectificationStatus::Rectifying);
        assert!(crate::doc::conflicts::conflicts(&a).unwrap().is_empty());
    }

    /// The rectification rate counts the derived status: a reopened hazard
    /// is not rectified, one that failed and then passed counts from the pass.
    #[test]
    fn the_rectification_rate_counts_the_derived_status() {
        let closed = |doc: &mut Automerge| {
            take(doc, "张三", plan("2026-12-10")).unwrap();
            take(doc, "张三", step(StepKind::Start)).unwrap();
            take(doc, "张三", done("王五")).unwrap();
        };
        let mut passed = dossier(1);
        closed(&mut passed);
        take(&mut passed, "钱七", verify(VerifyResult::Pass)).unwrap();
        let mut failed_then_passed = dossier(2);
        closed(&mut failed_then_passed);
        take(&mut failed_then_passed, "钱七", verify(VerifyResult::Fail)).unwrap();
        take(&mut failed_then_passed, "张三", done("王五")).unwrap();
        take(&mut failed_then_passed, "钱七", verify(VerifyResult::Pass)).unwrap();
        let mut reopened = passed.clone();
        reopened.set_actor(ActorId::from(&[3u8; 16][..]));
        take(&mut reopened, "张三", Step { note: "栏杆被拆".into(), ..step(StepKind::Reopen) }).unwrap();
        let open = dossier(4);
        let loops: Vec<Loop> = [&passed, &failed_then_passed, &reopened, &open].into_iter().map(state).collect();
        let found = "2026-11-23T02:00:00Z";
        let rate = Rate::of(loops.iter().map(|l| (found, false, l)), "2026-12-09T00:00:00Z");
        assert_eq!((rate.closed, rate.found, rate.rate), (2, 4, Some(0.5)));
        assert!(rate.definition.contains("其后重新打开的不计"), "{}", rate.definition);
        // The failed-then-passed hazard closed on its sixth step (the 7th):
        // before that cut-off only the first counts.
        let early = Rate::of(loops.iter().map(|l| (found, false, l)), "2026-12-05T00:00:00Z");
        assert_eq!((early.closed, early.found), (1, 4));
        let deleted = Rate::of(loops.iter().map(|l| (found, true, l)), "2026-12-09T00:00:00Z");
        assert_eq!((deleted.found, deleted.rate), (0, None));
    }

    /// Writes `s` as the next step past every rule of a local edit, as a
    /// tampered client could; returns the change.
    fn raw(doc: &mut Automerge, who: &str, mut s: Step) -> automerge::Change {
        let h = hazard(doc, &hid()).unwrap();
        s.after = Loop::of(&h.rectification).heads;
        (s.author, s.author_role, s.at) = (who.into(), Some("inspector".into()), "2026-12-01T08:00:00Z".into());
        let actor = doc.get_actor().to_bytes()[0] as u128;
        let id = EntityId::new(3, actor << 32 | h.rectification.steps.len() as u128);
        let path = ["hazards", hid().as_str(), "rectification", "steps"].map(str::to_owned);
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let hash = edit(doc, 3, |tx| crate::doc::insert_record(tx, &path, id.as_str(), "整改步骤", &s)).unwrap().hash;
        doc.get_change_by_hash(&hash.unwrap()).unwrap().clone()
    }

    fn id_of(doc: &Automerge) -> DocId {
        let d = crate::doc::dossier::read(doc).unwrap();
        d.id
    }

    /// What `doc` holds beyond `base`, checked at the door as `base`'s
    /// holder would.
    fn door(base: &Automerge, doc: &Automerge) -> Result<Vec<crate::validate::ArrivedStep>, String> {
        let arrived = Arrived::Changes(doc.get_changes(&base.get_heads()));
        arrived.checked(&id_of(doc), Some(base.clone())).map(|c| c.steps).map_err(|e| e.0)
    }

    /// Every door judges an arriving step at its own causal point: out of
    /// order, rewritten or a step whose signer's holder is not its author
    /// is refused; concurrent valid steps are both let in.
    #[test]
    fn the_doors_judge_each_step_at_its_own_point() {
        use automerge::transaction::Transactable;
        let base = dossier(1);
        let mut a = base.clone();
        raw(&mut a, "张三", done("王五"));
        let err = door(&base, &a).unwrap_err();
        assert!(err.contains("整改步骤") && err.contains("隐患当前为“未整改”，不能整改完成"), "{err}");

        let mut a = base.clone();
        take(&mut a, "张三", plan("2026-12-10")).unwrap();
        take(&mut a, "张三", step(StepKind::Start)).unwrap();
        take(&mut a, "张三", done("王五")).unwrap();
        let held = a.clone();
        // A verification by the rectifier, written past the local check.
        let mut tampered = held.clone();
        raw(&mut tampered, "王五", verify(VerifyResult::Pass));
        assert!(door(&held, &tampered).unwrap_err().contains("就是整改人"));
        // A step rewritten after the fact.
        let mut rewritten = held.clone();
        edit(&mut rewritten, 4, |tx| {
            let steps = crate::doc::map_at(tx, &["hazards", hid().as_str(), "rectification", "steps"])?;
            let first = tx.keys(&steps).next().unwrap();
            let step = crate::doc::map_at(tx, &["hazards", hid().as_str(), "rectification", "steps", &first])?;
            tx.put(&step, "deadline", "2026-12-30")?;
            Ok(())
        })
        .unwrap();
        assert!(door(&held, &rewritten).unwrap_err().contains("改写了整改步骤"));
        // The fields an earlier version kept, written on a hazard with steps.
        let mut legacy = held.clone();
        edit(&mut legacy, 4, |tx| {
            let r = crate::doc::map_at(tx, &["hazards", hid().as_str(), "rectification"])?;
            tx.put(&r, "status", "closed")?;
            Ok(())
        })
        .unwrap();
        assert!(door(&held, &legacy).unwrap_err().contains("改写了整改字段 status"));
        // The whole loop replaced by an empty one.
        let mut replaced = held.clone();
        edit(&mut replaced, 4, |tx| {
            let h = crate::doc::map_at(tx, &["hazards", hid().as_str()])?;
            let r = tx.put_object(&h, "rectification", automerge::ObjType::Map)?;
            tx.put(&r, "status", "open")?;
            tx.put_object(&r, "photos_after", automerge::ObjType::Map)?;
            Ok(())
        })
        .unwrap();
        assert!(door(&held, &replaced).unwrap_err().contains("替换了整改记录"));
        // A step put into the loop of a hazard the same change removed:
        // refused, never a panic.
        let mut orphan = held.clone();
        let other = EntityId::new(1, 2);
        edit(&mut orphan, 4, |tx| add_hazard(tx, &other, &sample_hazard("另一处"))).unwrap();
        let first = Step::new(StepKind::Plan);
        edit(&mut orphan, 4, |tx| {
            let plan = Step {
                mode: Some(RectificationMode::Immediate),
                owner: "王五".into(),
                measures: "封闭".into(),
                ..first
            };
            add_step(tx, &other, &EntityId::new(2, 99), plan, &signer("张三"), "2026-12-01T08:00:00Z".into())
        })
        .unwrap();
        edit(&mut orphan, 4, |tx| {
            let steps = crate::doc::map_at(tx, &["hazards", hid().as_str(), "rectification", "steps"])?;
            tx.delete(&crate::doc::map_at(tx, &["hazards"])?, hid().as_str())?;
            tx.put_object(&steps, EntityId::new(9, 9).as_str(), automerge::ObjType::Map)?;
            Ok(())
        })
        .unwrap();
        assert!(door(&held, &orphan).unwrap_err().contains("不是有效的整改步骤"));

        // Two verifications made offline at once: each valid where it was
        // made, both let in, whichever arrives first.
        let mut b = held.fork().with_actor(ActorId::from(&[2u8; 16][..]));
        take(&mut a, "钱七", verify(VerifyResult::Pass)).unwrap();
        take(&mut b, "孙八", verify(VerifyResult::Fail)).unwrap();
        let mut merged = a.clone();
        merged.merge(&mut b.clone()).unwrap();
        let steps = door(&a, &merged).unwrap();
        assert_eq!((steps.len(), steps[0].author.as_str()), (1, "孙八"));
        assert_eq!(door(&b, &merged).unwrap()[0].author, "钱七");
        // Who the signer's holder is, each door knows; a step naming
        // someone else is refused.
        let holder = |name: &str| Signer { name: name.into(), role: Some("inspector".into()) };
        assert!(crate::validate::authorship(&steps, |_| Some(holder("孙八"))).is_ok());
        let err = crate::validate::authorship(&steps, |_| Some(holder("钱七"))).unwrap_err();
        assert!(err.0.contains("记载的记录人 孙八 与签名设备的持有人 钱七 不符"), "{err}");
        // Recorded before the device was enrolled: no role, the same holder.
        let unenrolled = [crate::validate::ArrivedStep { role: None, ..steps[0].clone() }];
        assert!(crate::validate::authorship(&unenrolled, |_| Some(holder("孙 八"))).is_ok());
        let other = Signer { name: "孙八".into(), role: Some("enterprise".into()) };
        assert!(crate::validate::authorship(&steps, |_| Some(other.clone())).is_err(), "a role it did not have");
    }

    #[derive(Clone, Debug)]
    enum Act {
        /// A local edit, which the rules may refuse.
        Step {
            replica: usize,
            kind: u8,
            who: usize,
            day: u8,
        },
        /// A step written past the local rules, sent to another replica.
        Raw {
            replica: usize,
            kind: u8,
            who: usize,
            day: u8,
            to: usize,
        },
        Merge {
            from: usize,
            to: usize,
        },
    }

    fn act() -> impl Strategy<Value = Act> {
        let step = || (0..3usize, 0..6u8, 0..3usize, 23..30u8);
        prop_oneof![
            3 => step().prop_map(|(replica, kind, who, day)| Act::Step { replica, kind, who, day }),
            1 => (step(), 0..3usize).prop_map(|((replica, kind, who, day), to)| Act::Raw { replica, kind, who, day, to }),
            1 => (0..3usize, 0..3usize).prop_map(|(from, to)| Act::Merge { from, to }),
        ]
    }

    const NAMES: [&str; 3] = ["张三", "王五", "钱七"];

    fn random_step(kind: u8, who: usize, day: u8) -> Step {
        match kind {
            0 => plan(&format!("2026-11-{day}")),
            1 => step(StepKind::Start),
            2 => done(NAMES[(who + 1) % 3]),
            3 => verify(VerifyResult::Pass),
            4 => verify(VerifyResult::Fail),
            _ => Step { note: "复查发现反弹".into(), ..step(StepKind::Reopen) },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random steps on three replicas, merged in random orders: every
        /// replica derives the same loop, and every step valid at its own
        /// causal point is in the merged history and counts.
        #[test]
        fn replicas_derive_the_same_loop(acts in proptest::collection::vec(act(), 1..40), order in Just(()).prop_perturb(|_, mut rng| { let mut o = vec![0usize, 1, 2]; for i in (1..3).rev() { o.swap(i, rng.random_range(0..=i)); } o })) {
            let base = dossier(9);
            let mut replicas: Vec<Automerge> = (0..3u8).map(|i| base.fork().with_actor(ActorId::from(&[i + 10; 16][..]))).collect();
            let mut taken = BTreeSet::new();
            let steps_of = |doc: &Automerge| -> BTreeSet<String> {
                hazard(doc, &hid()).unwrap().rectification.steps.into_keys().collect()
            };
            for a in acts {
                match a {
                    Act::Step { replica, kind, who, day } => {
                        let doc = &mut replicas[replica];
                        let before = steps_of(doc);
                        if take(doc, NAMES[who], random_step(kind, who, day)).is_ok() {
                            taken.extend(steps_of(doc).difference(&before).cloned());
                        }
                    }
                    Act::Raw { replica, kind, who, day, to } if replica != to => {
                        // Valid where it was made exactly when the local
                        // rules would have let it in; the other replica's
                        // door agrees.
                        let s = random_step(kind, who, day);
                        let at = Loop::of(&hazard(&replicas[replica], &hid()).unwrap().rectification);
                        let s_checked = Step { author: NAMES[who].into(), ..s.clone() };
                        let valid = check_step(&s_checked, Some("2026-11-23")).and_then(|()| admit(&at.state, &s_checked)).is_ok();
                        let mut tampered = replicas[replica].clone();
                        let before = steps_of(&tampered);
                        raw(&mut tampered, NAMES[who], s);
                        let verdict = door(&replicas[to], &tampered);
                        prop_assert_eq!(verdict.is_ok(), valid, "{:?}", verdict);
                        if valid {
                            taken.extend(steps_of(&tampered).difference(&before).cloned());
                            replicas[replica] = tampered;
                        }
                    }
                    Act::Merge { from, to } if from != to => {
                        let mut other = replicas[from].clone();
                        replicas[to].merge(&mut other).unwrap();
                    }
                    Act::Merge { .. } | Act::Raw { .. } => {}
                }
            }
            let mut merged = Vec::new();
            for start in 0..3 {
                let mut doc = replicas[order[start]].clone();
                for i in order.iter().cycle().skip(start + 1).take(2) {
                    doc.merge(&mut replicas[*i].clone()).unwrap();
                }
                merged.push(state(&doc));
            }
            prop_assert_eq!(&merged[0], &merged[1]);
            prop_assert_eq!(&merged[1], &merged[2]);
            let history: BTreeSet<String> = merged[0].history.iter().filter(|e| e.counted).map(|e| e.id.clone()).collect();
            prop_assert_eq!(history, taken);
        }
    }
}
