//! Quota stores: where the counts of `limit` rules live. The decision core asks a
//! [`QuotaStore`] for room ([`crate::decision::quota`]); this module holds the stores: the
//! in-process [`MemoryStore`], the embedded default, and [`RedisStore`], shared by the
//! replicas of a fleet. Counts are kept by rule id, so they
//! survive a policy swap that keeps the id.
//!
//! May use: `decision` (the trait it implements) and the bottom layer.

mod memory;
mod redis;

pub use crate::decision::quota::{
    Ask, Cause, Health, QuotaStore, Refusal, UNAVAILABLE, enforce, key_of,
};
pub use memory::MemoryStore;
pub use redis::RedisStore;
