//! Decoded genflow definitions, cached by hash: a definition never changes
//! once stored, so neither a commit nor a read decodes one it has seen.

use super::MAX_DEFINITIONS;
use super::rows::{corrupt, from_json};
use crate::StoreError;
use fleet_core::config::Genflow;
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Decoded genflow definitions by `definition_hash`.
#[derive(Default)]
pub(super) struct Definitions {
    by_hash: Mutex<HashMap<String, Arc<Genflow>>>,
}

impl Definitions {
    /// The definition of run `run_id`, whose stored hash is `hash`; decoded
    /// from the row only when not cached.
    pub(super) fn get(
        &self,
        conn: &Connection,
        run_id: &str,
        hash: &str,
    ) -> Result<Arc<Genflow>, StoreError> {
        if let Some(g) = self
            .by_hash
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
        {
            return Ok(Arc::clone(g));
        }
        let json: String = conn
            .prepare_cached("SELECT json FROM definitions WHERE hash = ?1")?
            .query_row([hash], |r| r.get(0))
            .optional()?
            .ok_or_else(|| {
                corrupt(
                    &format!("run {run_id}"),
                    format!("its definition {hash} is missing"),
                )
            })?;
        let genflow: Genflow = from_json(&json, || format!("run {run_id} definition"))?;
        Ok(self.insert(hash, genflow))
    }

    pub(super) fn insert(&self, hash: &str, genflow: Genflow) -> Arc<Genflow> {
        let genflow = Arc::new(genflow);
        let mut map = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_DEFINITIONS {
            map.clear();
        }
        map.insert(hash.to_string(), Arc::clone(&genflow));
        genflow
    }
}
