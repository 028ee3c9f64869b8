//! The runs a store remembers (`runs::Known`), bounded: two generations of
//! at most half the bound each. Entries are inserted into and found in the
//! young one (a hit in the old one moves the entry back); when the young
//! one is full it becomes the old one and the old one is dropped. So the
//! runs used since the last turnover are always kept (the runs in flight,
//! which are what the fast commit needs), at O(1) per operation and
//! without an LRU list.

use std::collections::HashMap;

pub(super) struct Generations<V> {
    young: HashMap<String, V>,
    old: HashMap<String, V>,
    /// Entries per generation.
    half: usize,
}

impl<V> Generations<V> {
    /// At most `bound` entries in all (at least 2).
    pub fn new(bound: usize) -> Generations<V> {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (bound / 2).max(1),
        }
    }

    /// The entry of `key`, as recently used.
    pub fn get(&mut self, key: &str) -> Option<&V> {
        if !self.young.contains_key(key) {
            let v = self.old.remove(key)?;
            self.insert(key.to_owned(), v);
        }
        self.young.get(key)
    }

    pub fn insert(&mut self, key: String, value: V) {
        self.old.remove(&key);
        if !self.young.contains_key(&key) && self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Generations;

    #[test]
    fn bounded_and_keeps_what_is_used() {
        let mut g = Generations::new(4);
        for i in 0..100 {
            g.insert(format!("run{i}"), i);
            // One run in use all along (as a run in flight is).
            assert_eq!(g.get("run0").copied(), Some(0), "after {i}");
            assert!(g.len() <= 4, "{} entries after {i}", g.len());
        }
        assert_eq!(g.get("run99").copied(), Some(99));
        assert_eq!(g.get("run50"), None, "an unused run is dropped");
    }

    #[test]
    fn insert_replaces() {
        let mut g = Generations::new(4);
        g.insert("a".into(), 1);
        g.insert("b".into(), 2);
        g.insert("c".into(), 3); // a, b are the old generation now
        g.insert("a".into(), 4);
        assert_eq!(g.get("a").copied(), Some(4));
        assert_eq!(g.len(), 3);
    }
}
