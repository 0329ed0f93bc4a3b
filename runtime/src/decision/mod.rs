//! The decision core: the loaded program, the request as the VM sees it, the verdict and
//! its effects (the [`Outcome`], a pending approval's [`Hold`], quota asks, the redaction
//! plan, a lock refusal). It knows nothing of HTTP, sessions or upstreams: the gateway
//! hands it values and gets values back.
//!
//! May use: the bottom layer (`jsonrpc`, `metrics`) and the compiler crate.

pub mod caller;
pub mod decide;
pub mod delegation;
pub mod lock;
pub mod outcome;
pub mod quota;
pub mod redaction;

pub use caller::{Caller, agent_of};
pub use decide::{Decision, decide};
pub use outcome::{Hold, Outcome};

use mcpgate_compiler::config::Config;
use mcpgate_compiler::lock::{Lockfile, Pins};
use mcpgate_compiler::responders::ResponderSet;
use mcpgate_compiler::{Principal, Program};

/// A compiled program with what is derived from it once per swap.
#[derive(Debug)]
pub struct LoadedProgram {
    pub program: Program,
    /// `Program::hash_hex`, computed once.
    pub hash: String,
    /// The pins of `mcpgate.lock` from the same commit, with lock modes and argument
    /// validators: swapped together with the program.
    pub pins: Pins,
    /// `responders.yaml` of the same commit: swapped together with the program.
    pub responders: std::sync::Arc<ResponderSet>,
}

impl LoadedProgram {
    /// A program with no lock.
    pub fn new(program: Program) -> LoadedProgram {
        let hash = program.hash_hex();
        LoadedProgram {
            program,
            hash,
            pins: Pins::default(),
            responders: std::sync::Arc::default(),
        }
    }

    /// The program with the responders of the same commit.
    #[must_use]
    pub fn with_responders(mut self, responders: ResponderSet) -> LoadedProgram {
        self.responders = std::sync::Arc::new(responders);
        self
    }

    /// A program with the lock and config of the same commit.
    pub fn with_lock(
        program: Program,
        lock: Option<&Lockfile>,
        config: Option<&Config>,
    ) -> LoadedProgram {
        let mut loaded = LoadedProgram::new(program);
        loaded.pins = Pins::new(lock, config);
        loaded
    }

    /// The principal as this program sees it: the credential's groups and those the
    /// policy repository declares for its id (`principals.yaml`). Borrowed when the policy
    /// adds nothing, so most decisions copy nothing.
    pub fn principal<'a>(&self, p: &'a Principal) -> std::borrow::Cow<'a, Principal> {
        self.program.principal(p)
    }
}

impl From<Program> for LoadedProgram {
    fn from(program: Program) -> LoadedProgram {
        LoadedProgram::new(program)
    }
}
