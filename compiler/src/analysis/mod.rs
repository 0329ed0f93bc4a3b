//! Exact answers from a compiled policy: who can reach a tool, prompt or resource and
//! under which conditions (`mcpgate who-can`), what one principal can use (`mcpgate can`),
//! and where two programs decide differently (the exact part of `mcpgate diff`).
//!
//! For one target, the rules the compiled program dispatches to are read as formulas over
//! condition atoms; each request variable the atoms test is cut into classes on which every
//! atom has one truth value ([`domain`]); a search splits the request space on those
//! classes until every program's verdict is fixed ([`space`]). The result is a list of
//! regions that together hold every request, each with the verdict and deciding rule the VM
//! gives every request in it. Where that cannot be promised (opaque atoms such as regexes,
//! overlapping argument paths, classes that may miss values), reports say so.

mod compare;
mod describe;
mod domain;
mod env;
pub mod lint;
mod reach;
mod render;
mod space;
mod targets;
pub mod text;

pub use compare::{ExactDiff, RegionFlip, compare};
pub use env::Env;
pub use reach::{Access, Condition, LimitRef, Reach, Refusal, can, who_can};
pub use render::{markdown, plain};
pub use space::{MAX_REGIONS, Outcome};
pub use targets::{Named, targets};

use crate::Program;
use crate::ir::{self, Expr};
use crate::lock::Lockfile;
use crate::repo::{self, Checked, SourceFile};
use crate::request::{Principal, Request};
use crate::testing::Call;
use crate::vm::Memberships;
use space::{Fixed, Region, Space};
use std::collections::{BTreeSet, HashMap};

/// A policy to ask questions of: its checked rules, the program compiled from them (with
/// the group membership of `principals.yaml`), and the pinned tool annotations.
pub struct Model<'a> {
    pub policy: &'a ir::Policy,
    pub program: Program,
    pub lock: Option<&'a Lockfile>,
}

impl<'a> Model<'a> {
    pub fn new(
        policy: &'a ir::Policy,
        memberships: &Memberships,
        lock: Option<&'a Lockfile>,
    ) -> Model<'a> {
        Model {
            policy,
            program: Program::compile(policy, None).with_memberships(memberships),
            lock,
        }
    }

    /// The model of a checked repository.
    pub fn of(checked: &'a Checked) -> Model<'a> {
        Model::new(&checked.policy, &checked.memberships, checked.lock.as_ref())
    }

    /// The pinned annotations of a tool, if `mcpgate.lock` pins it.
    fn annotations(&self, call: &Call) -> Option<crate::ToolAnnotations> {
        let Call::Tool { server, tool } = call else {
            return None;
        };
        let pinned = self.lock?.server(server)?.tools.get(tool)?;
        Some(crate::lock::annotations_of(pinned.annotations()))
    }
}

/// Parses a condition written on the command line (`--args-constraint`), with the same
/// checks as a rule's `when`.
///
/// # Errors
/// The diagnostics, rendered, when the expression does not parse or check.
pub fn constraint(text: &str) -> Result<Expr, String> {
    let checked = repo::check_files(vec![SourceFile {
        path: "policies/args-constraint.mcpg".into(),
        text: format!("allow constraint.check when {text};"),
    }]);
    if checked.has_errors() {
        return Err(checked.rendered);
    }
    checked
        .policy
        .rules
        .first()
        .and_then(|r| r.condition.clone())
        .ok_or_else(|| "the constraint is empty".to_owned())
}

/// The regions of one target under one or more models.
pub struct TargetAnalysis {
    space: Space,
    regions: Vec<Region>,
    truncated: bool,
}

impl TargetAnalysis {
    /// Analyses `call` under every model of `models` (one for `who-can`, two for a diff).
    /// With `principal`, the caller is fixed (with the groups each model's
    /// `principals.yaml` adds; only the first model's are used). With `filter`, only the
    /// requests for which it is true are searched.
    pub fn new(
        models: &[&Model<'_>],
        call: &Call,
        principal: Option<&Principal>,
        filter: Option<&Expr>,
    ) -> TargetAnalysis {
        let mut env = env::Env::new(call.clone());
        let mut fixed = Fixed::default();
        // Annotations are fixed only when every model pins the same ones.
        let pinned: Vec<_> = models.iter().map(|m| m.annotations(call)).collect();
        if let Some(Some(a)) = pinned.first()
            && pinned.iter().all(|p| p.as_ref() == Some(a))
        {
            env.annotations = *a;
            fixed.annotations = true;
        }
        if let (Some(p), Some(m)) = (principal, models.first()) {
            env.principal = m.program.principal(p).into_owned();
            fixed.principal = true;
        }
        let sides: Vec<(&ir::Policy, &Program)> =
            models.iter().map(|m| (m.policy, &m.program)).collect();
        let space = Space::new(env, fixed, &sides, filter);
        let (regions, truncated) = space.regions();
        let regions = merge(&space, regions);
        TargetAnalysis {
            space,
            regions,
            truncated,
        }
    }

    /// No opaque atom, no overlapping paths, complete classes: the regions are exactly the
    /// sets of requests they describe.
    pub fn exact(&self) -> bool {
        self.space.exact() && !self.truncated
    }

    /// Every request lies in exactly one region (some regions may be empty when not
    /// [`TargetAnalysis::exact`]).
    pub fn covers(&self) -> bool {
        self.space.covers() && !self.truncated
    }

    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// The outcomes (one per model) of the regions holding a concrete request; `principal`
    /// is the caller as its credential says (before `principals.yaml`), `req` carries the
    /// caller as the first model sees it. A complete analysis returns exactly one.
    pub fn outcomes_at(&self, req: &Request<'_>, principal: &Principal) -> Vec<Vec<Outcome>> {
        let located = self.space.locate(req, principal);
        self.regions
            .iter()
            .filter(|r| r.contains(&located))
            .map(|r| r.outcomes.clone())
            .collect()
    }
}

/// A request of one region, and what each model decides for it there.
#[derive(Clone, Debug)]
pub struct Witness {
    /// The request; its principal carries the credential's groups only (each program adds
    /// the groups its `principals.yaml` declares).
    pub env: Env,
    pub outcomes: Vec<Outcome>,
}

impl TargetAnalysis {
    /// One request per region, built from the classes' sample values; `None` when the
    /// analysis is not exact (a region may then hold no request). Regions that constrain
    /// only what they leave open get its default (missing, anonymous).
    pub fn witnesses(&self) -> Option<Vec<Witness>> {
        if !self.exact() {
            return None;
        }
        let mut out = Vec::with_capacity(self.regions.len());
        for r in &self.regions {
            let mut env = self.space.env.clone();
            for (v, set) in &r.cells {
                let d = self.space.vars.get(*v)?;
                let c = set.first().and_then(|&c| d.classes.get(c as usize))?;
                match &d.key {
                    space::VarKey::Value(var) => env.set(var, c.rep.as_ref()),
                    space::VarKey::Group(g) => {
                        if c.rep == Some(serde_json::Value::Bool(true)) {
                            env.principal.groups.push(g.clone());
                        }
                    }
                    space::VarKey::Opaque(_) => return None,
                }
            }
            out.push(Witness {
                env,
                outcomes: r.outcomes.clone(),
            });
        }
        Some(out)
    }
}

/// Joins regions with the same outcomes that differ in the classes of one variable, and
/// drops constraints that allow every class: the same sets of requests, fewer lines.
/// Where a variable's classes may miss values, every class is not every value: such a
/// constraint stays, or the region would claim its verdict for values never searched.
fn merge(space: &Space, mut regions: Vec<Region>) -> Vec<Region> {
    let classes = |v: usize| {
        space
            .vars
            .get(v)
            .filter(|d| d.complete)
            .map_or(usize::MAX, |d| d.classes.len())
    };
    loop {
        let mut changed = false;
        let vars: BTreeSet<usize> = regions
            .iter()
            .flat_map(|r| r.cells.iter().map(|c| c.0))
            .collect();
        for v in vars {
            let mut out: Vec<Region> = Vec::with_capacity(regions.len());
            let mut index: HashMap<String, usize> = HashMap::new();
            for r in regions {
                let Some(mine) = r.cells.iter().find(|c| c.0 == v).map(|c| c.1.clone()) else {
                    out.push(r);
                    continue;
                };
                let rest: Vec<&(usize, Vec<u16>)> = r.cells.iter().filter(|c| c.0 != v).collect();
                let key = format!("{:?}|{rest:?}", r.outcomes);
                match index.get(&key).and_then(|&i| out.get_mut(i)) {
                    Some(into) => {
                        if let Some(cell) = into.cells.iter_mut().find(|c| c.0 == v) {
                            cell.1.extend(mine);
                            cell.1.sort_unstable();
                            cell.1.dedup();
                        }
                        changed = true;
                    }
                    None => {
                        index.insert(key, out.len());
                        out.push(r);
                    }
                }
            }
            for r in &mut out {
                r.cells.retain(|(v, cls)| cls.len() < classes(*v));
            }
            regions = out;
        }
        if !changed {
            return regions;
        }
    }
}

/// `who-can` for every target the policy names or the lock pins.
pub fn who_can_all(model: &Model<'_>) -> Vec<Reach> {
    targets(&[model.policy], model.lock)
        .iter()
        .map(|t| who_can(model, t, None))
        .collect()
}
