//! Reading the files a walk matched, on more than one core when there are
//! enough of them.
//!
//! The walk itself stays on the calling thread (see `gather.rs`); what it
//! matches is opened, read, hashed and checked for UTF-8 afterwards. On a
//! large tree that is most of the time, and it parallelizes well: every
//! file is independent. On a typical corpus (a few dozen files under pruned
//! globs) waking the pool would cost more than it saves, so few files are
//! read in place.

use rayon::prelude::*;

/// Below this many files, they are read on the calling thread.
const PARALLEL_FROM_FILES: usize = 48;

/// `f` applied to every item, in order; in parallel when there are many.
pub(crate) fn map_files<T, U, F>(items: Vec<T>, f: F) -> Vec<U>
where
    T: Send,
    U: Send,
    F: Fn(T) -> U + Sync + Send,
{
    if items.len() < PARALLEL_FROM_FILES || rayon::current_num_threads() < 2 {
        return items.into_iter().map(f).collect();
    }
    // Small pieces of work: one large file must not hold a whole half of
    // the list back.
    items.into_par_iter().with_max_len(16).map(f).collect()
}
