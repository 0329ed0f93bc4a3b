//! Who is calling: gateway-issued grant tokens (hashed in `state.db`, revocable) and, later
//! in this module, OIDC bearer tokens; the principal a request acts as.

pub mod time;
pub mod tokens;
