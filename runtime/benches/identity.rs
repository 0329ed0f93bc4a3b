//! The cost of the identity check every request pays with `identity` configured: a gateway
//! token already in the store's cache (hash, `PRAGMA data_version`, cache lookup), alone and
//! through `Authenticator::authenticate` from the request headers; the SHA-256 of the token
//! is shown on its own for comparison.
//! Run: `cargo bench -p mcpgate --bench identity -- --measurement-time 2`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use mcpgate::identity::Authenticator;
use mcpgate::identity::tokens::{NewToken, TokenStore, hash_token};
use mcpgate_compiler::PrincipalKind;
use mcpgate_compiler::config::IdentityConfig;
use std::hint::black_box;

const NOW: u64 = 1_800_000_000;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open(dir.path()).unwrap();
    let (token, _) = store
        .issue(
            NewToken {
                issuer: "ops".into(),
                subject: "alice@example.com".into(),
                kind: PrincipalKind::Human,
                agent: Some("claude-code".into()),
                groups: vec!["eng".into(), "oncall".into()],
                servers: Some(vec!["github".into(), "stub".into()]),
                reason: "bench".into(),
                ttl_secs: None,
            },
            NOW,
        )
        .unwrap();
    // The first check reads the row; every later one is served from the cache.
    store.verify(&token, NOW).unwrap();

    c.bench_function("identity/sha256-of-token", |b| {
        b.iter(|| black_box(hash_token(black_box(&token))))
    });
    c.bench_function("identity/verify-cached", |b| {
        b.iter(|| black_box(store.verify(black_box(&token), NOW).unwrap()))
    });

    let auth = Authenticator::with_tokens(
        IdentityConfig::default(),
        TokenStore::open(dir.path()).unwrap(),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    auth.authenticate(&headers).now_or_never().unwrap().unwrap();
    c.bench_function("identity/authenticate-cached", |b| {
        b.iter(|| {
            // The token path never waits, so the future is ready at once.
            let a = auth.authenticate(black_box(&headers)).now_or_never();
            black_box(a.unwrap().unwrap())
        })
    });
    let anonymous = Authenticator::anonymous_only();
    c.bench_function("identity/authenticate-without-identity", |b| {
        b.iter(|| {
            let a = anonymous.authenticate(black_box(&headers)).now_or_never();
            black_box(a.unwrap().unwrap())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
