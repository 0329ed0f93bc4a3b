//! Properties of the event-stream parser: chunk boundaries never change the events, and no
//! input makes it panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate::upstream::sse::{SseEvent, SseParser};
use proptest::prelude::*;

fn parse_in_chunks(input: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, Option<String>, Option<u64>) {
    let mut parser = SseParser::new(1 << 20);
    let mut events = Vec::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(input.len())) {
        parser.feed(&input[start..cut], &mut events).unwrap();
        start = cut;
    }
    let id = parser.last_event_id().map(str::to_owned);
    (events, id, parser.retry_ms())
}

/// Streams built from the pieces that matter: fields, comments, all three line endings,
/// multi-byte text and a byte order mark.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: endpoint".to_vec()),
        Just(b"id: 7".to_vec()),
        Just(b"retry: 100".to_vec()),
        Just(b": comment".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n\n".to_vec()),
        Just("{\"k\":\"é€\"}".as_bytes().to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        "[a-z ]{0,8}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn chunk_boundaries_do_not_change_the_events(
        input in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = parse_in_chunks(&input, &[]);
        let chunked = parse_in_chunks(&input, &cuts);
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn byte_at_a_time_matches_whole(input in stream()) {
        let whole = parse_in_chunks(&input, &[]);
        let cuts: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(whole, parse_in_chunks(&input, &cuts));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut parser = SseParser::new(64);
        let mut events = Vec::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain(std::iter::once(input.len())) {
            // Past the size limit the parser reports an error and is discarded.
            if parser.feed(&input[start..cut], &mut events).is_err() {
                break;
            }
            start = cut;
        }
        prop_assert!(events.iter().all(|e| e.data.len() <= 64));
    }
}

#[test]
fn events_carry_the_last_id() {
    let (events, id, retry) = parse_in_chunks(b"id: a\ndata: 1\n\ndata: 2\n\nretry: x\n", &[3, 9]);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].id.as_deref(), Some("a"));
    assert_eq!(id.as_deref(), Some("a"));
    assert_eq!(retry, None);
}
