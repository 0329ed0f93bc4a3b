//! The YAML front end: policies, tests, `mcpgate.yaml`, `principals.yaml` and
//! `responders.yaml`, each validated against its JSON Schema with errors at YAML lines and
//! columns.

pub mod config;
pub mod node;
pub mod policy;
pub mod principals;
pub mod responders;
pub mod scalar;
pub mod tests;
pub mod validate;
