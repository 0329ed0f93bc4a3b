//! The mcpgate policy compiler: sources (DSL and YAML) to a typed IR, checks with
//! diagnostics, compilation to decision-tree bytecode, and the VM that evaluates it.
//!
//! The VM lives here, not in the gateway, so that `mcpgate check`, `test`, `explain` and
//! `diff` evaluate exactly what `mcpgate serve` evaluates.

pub mod analysis;
pub mod check;
pub mod config;
pub mod diag;
pub mod diff;
pub mod duration;
pub mod format;
pub mod ir;
pub mod lock;
pub mod lower;
pub mod reference;
pub mod repo;
pub mod request;
pub mod responders;
pub mod schema;
pub mod source;
pub mod testing;
pub mod vm;
pub mod yaml;

pub use request::{
    ATTR_DELEGATION, ATTR_ON_BEHALF_OF, Principal, PrincipalKind, Request, Target, ToolAnnotations,
    Verdict,
};
pub use vm::{Decision, Program, RuleInfo, evaluate, visible};
