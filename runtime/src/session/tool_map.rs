//! A per-session table keyed by (server, tool), read on every call: nested maps, so a lookup
//! by `&str` pair allocates nothing (a `(String, String)` key would need two copies).

use std::collections::HashMap;

/// Values by server, then tool; `len` counts the (server, tool) pairs.
#[derive(Debug)]
pub(crate) struct ToolMap<V> {
    by_server: HashMap<String, HashMap<String, V>>,
    len: usize,
}

impl<V> Default for ToolMap<V> {
    fn default() -> Self {
        ToolMap {
            by_server: HashMap::new(),
            len: 0,
        }
    }
}

impl<V> ToolMap<V> {
    /// The number of (server, tool) pairs.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, server: &str, tool: &str) -> Option<&V> {
        self.by_server.get(server)?.get(tool)
    }

    pub(crate) fn contains(&self, server: &str, tool: &str) -> bool {
        self.get(server, tool).is_some()
    }

    pub(crate) fn insert(&mut self, server: &str, tool: &str, value: V) {
        let tools = self.by_server.entry(server.to_owned()).or_default();
        if tools.insert(tool.to_owned(), value).is_none() {
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_counted_once_and_found_by_both_names() {
        let mut m = ToolMap::default();
        m.insert("a", "x", 1);
        m.insert("a", "y", 2);
        m.insert("b", "x", 3);
        m.insert("a", "x", 4);
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("a", "x"), Some(&4));
        assert_eq!(m.get("b", "x"), Some(&3));
        assert_eq!(m.get("b", "y"), None);
        assert!(m.contains("a", "y") && !m.contains("c", "x"));
    }
}
