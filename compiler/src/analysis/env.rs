//! A concrete request under construction: the fixed part of a question (the target, and
//! the principal for `can`) plus values set for the variables an analysis splits on. Atoms
//! are evaluated on such requests by the reference interpreter, so an analysis never
//! re-implements the language's semantics.

use crate::ir::{Annotation, PathSeg, Var};
use crate::request::{Principal, PrincipalKind, Request, ToolAnnotations};
use crate::testing::Call;
use serde_json::{Map, Value};

#[derive(Clone, Debug)]
pub struct Env {
    pub principal: Principal,
    pub agent: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub call: Call,
    pub args: Value,
    pub annotations: ToolAnnotations,
}

impl Env {
    /// A request for `call` with nothing else known: anonymous, no arguments.
    pub fn new(call: Call) -> Env {
        Env {
            principal: Principal::anonymous(),
            agent: None,
            client_name: None,
            client_version: None,
            call,
            args: Value::Null,
            annotations: ToolAnnotations::default(),
        }
    }

    pub fn request(&self) -> Request<'_> {
        Request {
            principal: &self.principal,
            agent: self.agent.as_deref(),
            client_name: self.client_name.as_deref(),
            client_version: self.client_version.as_deref(),
            target: self.call.target(),
            args: &self.args,
            annotations: self.annotations,
        }
    }

    /// Sets a variable (`None`: missing). A value the variable cannot hold (a number as
    /// `principal.kind`) leaves it unchanged: domains never produce one.
    pub fn set(&mut self, var: &Var, value: Option<&Value>) {
        let text = || value.and_then(Value::as_str).map(str::to_owned);
        match var {
            Var::Args(path) => match value {
                Some(v) => set_path(&mut self.args, path, v.clone()),
                None => remove_path(&mut self.args, path),
            },
            Var::PrincipalAttr(path) => {
                let mut attrs = Value::Object(std::mem::take(&mut self.principal.attrs));
                match value {
                    Some(v) => set_path(&mut attrs, path, v.clone()),
                    None => remove_path(&mut attrs, path),
                }
                if let Value::Object(m) = attrs {
                    self.principal.attrs = m;
                }
            }
            Var::PrincipalId => {
                if let Some(s) = text() {
                    self.principal.id = s;
                }
            }
            Var::PrincipalKind => {
                if let Some(k) = value.and_then(|v| serde_json::from_value(v.clone()).ok()) {
                    self.principal.kind = k;
                }
            }
            Var::PrincipalGroups => {
                if let Some(Value::Array(items)) = value {
                    self.principal.groups = items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect();
                }
            }
            Var::AgentName => self.agent = text(),
            Var::ClientName => self.client_name = text(),
            Var::ClientVersion => self.client_version = text(),
            Var::ToolAnnotation(a) => {
                let b = value.and_then(Value::as_bool);
                let n = &mut self.annotations;
                match a {
                    Annotation::ReadOnly => n.read_only = b,
                    Annotation::Destructive => n.destructive = b,
                    Annotation::Idempotent => n.idempotent = b,
                    Annotation::OpenWorld => n.open_world = b,
                }
            }
            Var::Server | Var::Tool => {}
        }
    }
}

/// The kinds a principal can have, as the language spells them.
pub const KINDS: [PrincipalKind; 4] = [
    PrincipalKind::Human,
    PrincipalKind::Agent,
    PrincipalKind::Service,
    PrincipalKind::Anonymous,
];

/// Sets `path` in `root`, creating objects and arrays on the way (arrays padded with
/// `null`); a step through a scalar replaces it.
pub fn set_path(root: &mut Value, path: &[PathSeg], v: Value) {
    let Some((first, rest)) = path.split_first() else {
        *root = v;
        return;
    };
    match first {
        PathSeg::Key(k) => {
            if !root.is_object() {
                *root = Value::Object(Map::new());
            }
            if let Value::Object(m) = root {
                set_path(m.entry(k.clone()).or_insert(Value::Null), rest, v);
            }
        }
        PathSeg::Index(i) => {
            // Paths come from the policy; an index this large is not worth building.
            let Ok(i) = usize::try_from(*i) else { return };
            if i > 4096 {
                return;
            }
            if !root.is_array() {
                *root = Value::Array(Vec::new());
            }
            if let Value::Array(a) = root {
                while a.len() <= i {
                    a.push(Value::Null);
                }
                if let Some(slot) = a.get_mut(i) {
                    set_path(slot, rest, v);
                }
            }
        }
    }
}

fn remove_path(root: &mut Value, path: &[PathSeg]) {
    let Some((last, parent)) = path.split_last() else {
        *root = Value::Null;
        return;
    };
    let Some(holder) = crate::ir::value_at_mut(root, parent) else {
        return;
    };
    match (last, holder) {
        (PathSeg::Key(k), Value::Object(m)) => {
            m.remove(k);
        }
        (PathSeg::Index(i), Value::Array(a)) => {
            // Shortening the array is the only way to make an index missing.
            if let Ok(i) = usize::try_from(*i)
                && i < a.len()
            {
                a.truncate(i);
            }
        }
        _ => {}
    }
}
