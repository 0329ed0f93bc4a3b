//! The binary encoding: round trips, stable hashes, and decoding of bad bytes that never
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! panics.

mod vm_common;

use mcpgate_compiler::vm::{DecodeError, FORMAT_VERSION, Program, evaluate, visible};
use mcpgate_compiler::{Principal, Request, Target, ToolAnnotations};
use proptest::prelude::*;
use serde_json::json;

fn sample() -> Program {
    Program::compile(&vm_common::realistic(300, 7), Some("0123abcd"))
}

#[test]
fn round_trip_preserves_the_program_and_its_hash() {
    let p = sample();
    let bytes = p.encode();
    let q = Program::decode(&bytes).unwrap();
    assert_eq!(q.encode(), bytes);
    assert_eq!(q.hash(), p.hash());
    assert_eq!(q.hash_hex().len(), 64);
    assert_eq!(q.commit(), Some("0123abcd"));
    assert_eq!(q.rules(), p.rules());
    let principal = Principal::anonymous();
    let args = json!({"amount": 70_000, "path": "/srv/docs/a"});
    for s in 0..20 {
        let server = vm_common::server_name(s);
        for t in ["get_thing1", "delete_thing2", "list_thing0", "nope"] {
            let target = Target::Tool {
                server: &server,
                tool: t,
            };
            let r = Request {
                principal: &principal,
                agent: None,
                client_name: None,
                client_version: None,
                target,
                args: &args,
                annotations: ToolAnnotations::default(),
            };
            assert_eq!(evaluate(&p, &r), evaluate(&q, &r));
            assert_eq!(
                visible(&p, &principal, target),
                visible(&q, &principal, target)
            );
        }
    }
}

#[test]
fn the_hash_depends_on_the_content_only() {
    let policy = vm_common::realistic(200, 3);
    let a = Program::compile(&policy, Some("c1"));
    let b = Program::compile(&policy, Some("c1"));
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.encode(), b.encode());
    assert_ne!(a.hash(), Program::compile(&policy, Some("c2")).hash());
    assert_ne!(
        a.hash(),
        Program::compile(&vm_common::realistic(200, 4), Some("c1")).hash()
    );
}

#[test]
fn bad_headers_are_named() {
    let bytes = sample().encode();
    assert_eq!(Program::decode(b"nope").unwrap_err(), DecodeError::BadMagic);
    let mut v = bytes.clone();
    v[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        Program::decode(&v).unwrap_err(),
        DecodeError::Version(FORMAT_VERSION + 1)
    );
    assert_eq!(
        Program::decode(&bytes[..bytes.len() - 1]).unwrap_err(),
        DecodeError::Truncated
    );
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        Program::decode(&long),
        Err(DecodeError::Invalid(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut with_header = b"MCPGPROG".to_vec();
        with_header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        with_header.extend_from_slice(&bytes);
        let _ = Program::decode(&bytes);
        let _ = Program::decode(&with_header);
    }

    #[test]
    fn corrupted_programs_decode_or_fail_and_still_evaluate(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let small = Program::compile(&vm_common::realistic(30, 11), None).encode();
        let mut v = small.clone();
        for (i, b) in flips {
            let at = i.index(v.len());
            v[at] = b;
        }
        if let Ok(p) = Program::decode(&v) {
            let principal = Principal::anonymous();
            let args = json!({"amount": 1});
            let target = Target::Tool { server: "srv1", tool: "get_thing1" };
            let r = Request {
                principal: &principal,
                agent: None,
                client_name: None,
                client_version: None,
                target,
                args: &args,
                annotations: ToolAnnotations::default(),
            };
            let d = evaluate(&p, &r);
            let _ = p.limits(&d, &r).count();
            let _ = visible(&p, &principal, target);
        }
        let _ = Program::decode(&small[..cut.index(small.len())]);
    }
}

#[test]
fn memberships_round_trip_and_change_the_hash() {
    let plain = sample();
    let mut m = mcpgate_compiler::vm::Memberships::new();
    m.insert(
        "carol@example.com".into(),
        vec!["finance".into(), "eng".into()],
    );
    let with = sample().with_memberships(&m);
    assert_ne!(plain.hash(), with.hash());
    let back = Program::decode(&with.encode()).unwrap();
    assert_eq!(back.hash(), with.hash());
    assert_eq!(back.groups_of("carol@example.com"), ["eng", "finance"]);
    assert!(back.groups_of("bob@example.com").is_empty());
    // No membership: the encoding of a program without any, unchanged.
    let none = sample().with_memberships(&mcpgate_compiler::vm::Memberships::new());
    assert_eq!(none.hash(), plain.hash());
    let carol = mcpgate_compiler::Principal {
        id: "carol@example.com".into(),
        groups: vec!["eng".into()],
        ..Default::default()
    };
    assert_eq!(with.principal(&carol).groups, ["eng", "finance"]);
    assert!(matches!(
        plain.principal(&carol),
        std::borrow::Cow::Borrowed(_)
    ));
}
