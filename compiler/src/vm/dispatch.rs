//! The exact-name dispatch table: open addressing over (server, name) with a fast
//! non-cryptographic hash. Keys come from the policy, not from requests, so collisions an
//! attacker could provoke only cost probes, never correctness.

/// A read-only map from (server, name) to a leaf index.
#[derive(Debug, Default)]
pub(crate) struct Table {
    entries: Vec<(String, String, u32)>,
    /// Entry index + 1 per slot (0 = empty); the length is a power of two.
    slots: Vec<u32>,
}

/// An Fx-style hash, eight bytes at a time, over the server, its length, and the name.
#[inline]
fn hash(server: &str, name: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = 0;
    let mut add = |w: u64| h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    for part in [server.as_bytes(), name.as_bytes()] {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            add(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        if let Some(d) = w.get_mut(..rest.len()) {
            d.copy_from_slice(rest);
        }
        add(u64::from_le_bytes(w) ^ ((part.len() as u64) << 56));
    }
    // Mix the high bits down: the slot index uses the low bits.
    h ^ (h >> 32)
}

impl Table {
    pub fn new<'a>(keys: impl Iterator<Item = (&'a str, &'a str, u32)>) -> Table {
        let entries: Vec<(String, String, u32)> = keys
            .map(|(s, n, leaf)| (s.to_owned(), n.to_owned(), leaf))
            .collect();
        let cap = (entries.len() * 2).next_power_of_two().max(8);
        let mut slots = vec![0u32; cap];
        let mask = cap - 1;
        for (i, (s, n, _)) in entries.iter().enumerate() {
            let mut at = (hash(s, n) as usize) & mask;
            while slots.get(at).is_some_and(|&v| v != 0) {
                at = (at + 1) & mask;
            }
            if let Some(slot) = slots.get_mut(at) {
                *slot = u32::try_from(i + 1).unwrap_or(0);
            }
        }
        Table { entries, slots }
    }

    /// The leaf for (server, name), if the pair is in the table.
    #[inline]
    pub fn get(&self, server: &str, name: &str) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = (hash(server, name) as usize) & mask;
        // At most half the slots are full, so an empty slot ends every probe.
        loop {
            let e = *self.slots.get(at)?;
            if e == 0 {
                return None;
            }
            let (s, n, leaf) = self.entries.get(e as usize - 1)?;
            if s == server && n == name {
                return Some(*leaf);
            }
            at = (at + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_nothing_else() {
        let keys: Vec<(String, String)> = (0..500)
            .map(|i| (format!("s{}", i % 7), format!("tool_{i}")))
            .collect();
        let t = Table::new(
            keys.iter()
                .enumerate()
                .map(|(i, (s, n))| (s.as_str(), n.as_str(), i as u32)),
        );
        for (i, (s, n)) in keys.iter().enumerate() {
            assert_eq!(t.get(s, n), Some(i as u32));
        }
        assert_eq!(t.get("s1", "tool_0"), None);
        assert_eq!(t.get("", ""), None);
        assert_eq!(Table::new(std::iter::empty()).get("a", "b"), None);
    }
}
