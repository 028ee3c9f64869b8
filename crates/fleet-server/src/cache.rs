//! A small in-process cache bounded by the total size of what it holds,
//! evicting the least recently used entries first. Used for things that are
//! expensive to build and can be keyed so that an entry never goes stale:
//! documents by sha256 (content-addressed), and per-run views by the run's
//! version (every commit bumps it).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

pub struct Lru<V> {
    inner: Mutex<Inner<V>>,
    /// Most the weights of the entries may add up to.
    budget: usize,
}

struct Inner<V> {
    map: HashMap<String, Entry<V>>,
    used: usize,
    /// Bumped on every access; an entry's stamp says when it was last used.
    clock: u64,
}

struct Entry<V> {
    value: V,
    weight: usize,
    used_at: u64,
}

impl<V: Clone> Lru<V> {
    pub fn new(budget: usize) -> Lru<V> {
        Lru {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                used: 0,
                clock: 0,
            }),
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        // A poisoned lock only means another request panicked while holding
        // it; every mutation below leaves the map consistent first.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.map.get_mut(key).map(|e| {
            e.used_at = now;
            e.value.clone()
        })
    }

    /// Stores `value` (about `weight` bytes) under `key`, unless `keep_old`
    /// says the entry already there should win (e.g. it is of a newer
    /// version). Values larger than the whole budget are not kept.
    pub fn insert_unless(
        &self,
        key: &str,
        value: V,
        weight: usize,
        keep_old: impl FnOnce(&V) -> bool,
    ) {
        if weight > self.budget {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some(old) = inner.map.get(key) {
            if keep_old(&old.value) {
                return;
            }
            let w = old.weight;
            inner.map.remove(key);
            inner.used -= w;
        }
        if inner.used + weight > self.budget {
            // Oldest first, until the new entry fits. Sorting is fine here:
            // this runs on a miss that overflows, not on every request.
            let mut by_age: Vec<(u64, String)> = inner
                .map
                .iter()
                .map(|(k, e)| (e.used_at, k.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, k) in by_age {
                if inner.used + weight <= self.budget {
                    break;
                }
                if let Some(e) = inner.map.remove(&k) {
                    inner.used -= e.weight;
                }
            }
        }
        inner.used += weight;
        inner.map.insert(
            key.to_owned(),
            Entry {
                value,
                weight,
                used_at: now,
            },
        );
    }

    pub fn insert(&self, key: &str, value: V, weight: usize) {
        self.insert_unless(key, value, weight, |_| false);
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        self.lock().used
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn evicts_least_recently_used_to_stay_within_budget() {
        let c: Lru<u32> = Lru::new(10);
        c.insert("a", 1, 4);
        c.insert("b", 2, 4);
        assert_eq!(c.get("a"), Some(1)); // a is now more recent than b
        c.insert("c", 3, 4);
        assert_eq!(c.get("b"), None, "b was the least recently used");
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("c"), Some(3));
        assert_eq!(c.used(), 8);
        c.insert("huge", 9, 11);
        assert_eq!(c.get("huge"), None, "larger than the budget: not kept");
        assert_eq!(c.used(), 8);
    }

    #[test]
    fn replacing_an_entry_frees_its_weight_and_keep_old_is_honoured() {
        let c: Lru<u32> = Lru::new(10);
        c.insert("a", 1, 6);
        c.insert("a", 2, 6);
        assert_eq!(c.get("a"), Some(2));
        assert_eq!(c.used(), 6);
        c.insert_unless("a", 1, 3, |old| *old > 1);
        assert_eq!(c.get("a"), Some(2), "the newer value stays");
        c.insert_unless("a", 3, 3, |old| *old > 3);
        assert_eq!(c.get("a"), Some(3));
        assert_eq!(c.used(), 3);
    }
}
