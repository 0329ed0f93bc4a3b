//! Who asks: the caller of one request as every part of its decision sees it.

use super::LoadedProgram;
use mcpgate_compiler::{Principal, Request, Target, ToolAnnotations};
use serde_json::Value;
use std::borrow::Cow;

/// The caller of a request: its session, the principal as its credential declares it and
/// as the program sees it, and the client it uses. Built once per decided message, so the
/// verdict, quotas, redaction and the audit record all see the same principal.
#[derive(Clone, Debug)]
pub struct Caller<'a> {
    /// The session id.
    pub session: &'a str,
    /// The principal as its credential declares it.
    pub declared: &'a Principal,
    /// The principal as the program sees it: with the groups `principals.yaml` declares
    /// for its id (borrowed when the policy adds nothing).
    pub principal: Cow<'a, Principal>,
    pub client_name: Option<&'a str>,
    pub client_version: Option<&'a str>,
    pub protocol_version: &'a str,
}

impl<'a> Caller<'a> {
    /// The caller as `loaded` sees it.
    pub fn new(
        loaded: &LoadedProgram,
        session: &'a str,
        declared: &'a Principal,
        client: (Option<&'a str>, Option<&'a str>),
        protocol_version: &'a str,
    ) -> Caller<'a> {
        Caller {
            session,
            declared,
            principal: loaded.principal(declared),
            client_name: client.0,
            client_version: client.1,
            protocol_version,
        }
    }

    /// The agent the principal acts as.
    pub fn agent(&self) -> Option<&str> {
        agent_of(&self.principal)
    }

    /// The request the program is asked about when this caller asks for `target`: the one
    /// place a request is built, so every part of a decision sees the same principal.
    pub fn request<'b>(
        &'b self,
        target: Target<'b>,
        args: &'b Value,
        annotations: ToolAnnotations,
    ) -> Request<'b> {
        Request {
            principal: &self.principal,
            agent: self.agent(),
            client_name: self.client_name,
            client_version: self.client_version,
            target,
            args,
            annotations,
        }
    }
}

/// The agent a principal acts as: its `agent` attribute, when it has one.
pub fn agent_of(principal: &Principal) -> Option<&str> {
    principal.attrs.get("agent").and_then(Value::as_str)
}
