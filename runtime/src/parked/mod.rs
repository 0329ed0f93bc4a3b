//! Which replica of a fleet holds a parked call. A call waiting for a stateless client's
//! retry (an upstream's sampling or elicitation request turned into `input_required`) lives
//! in the memory of the replica that parked it; the retry may reach any replica. The owner
//! records the call's key here, with its own URL, and a replica that gets a retry it does
//! not hold looks the owner up and forwards the client's request to it over a signed
//! internal request ([`envelope`]).
//!
//! Only a fleet (`state.postgres`) has this table: one gateway holds all its calls itself.

pub mod envelope;
pub mod postgres;

use sha2::{Digest, Sha256};

/// The replica holding a parked call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its base URL as the other replicas reach it (`state.advertise`).
    pub url: String,
    /// Its name (`state.replica_id`), for messages.
    pub replica: String,
}

/// A recorded parked call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub owner: Owner,
    /// The principal id that parked it: only its retry is forwarded.
    pub principal: String,
}

/// Where parked calls are recorded. Errors are messages naming the store, never a secret.
pub trait ParkedStore: Send + Sync + std::fmt::Debug {
    /// Records that `owner` holds the call `key` of `principal` until `expires`.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn record(&self, key: &str, record: &Record, expires: u64) -> Result<(), String>;

    /// The record of `key` if one has not expired at `now`.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn find(&self, key: &str, now: u64) -> Result<Option<Record>, String>;

    /// Forgets `key` (the call was resumed, or its owner is gone).
    ///
    /// # Errors
    /// When the store cannot be written.
    fn forget(&self, key: &str) -> Result<(), String>;
}

/// What the table keeps of a key: its SHA-256, so a reader of the database cannot retry
/// the call with it.
pub fn key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}
