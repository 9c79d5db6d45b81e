//! SPEC section 4: every rule a block breaks, as a bitmask, and the replay states.

use std::collections::{HashMap, HashSet};

use crate::header::{Header, HEADER_SIZE};
use crate::{merkle, reveal};

const VERSION_UNSUPPORTED: u32 = 1 << 0;
const TIMESTAMP_NEGATIVE: u32 = 1 << 1;
const TIMESTAMP_FUTURE: u32 = 1 << 2;
const WORK_SCORE_INVALID: u32 = 1 << 3;
const TIME_ASYMMETRY_NONFINITE: u32 = 1 << 4;
const SOLUTION_QUALITY_INVALID: u32 = 1 << 5;
const COMPLEXITY_WEIGHT_INVALID: u32 = 1 << 6;
const ENERGY_ESTIMATE_INVALID: u32 = 1 << 7;
const TOO_MANY_TRANSACTIONS: u32 = 1 << 8;
const TX_ROOT_MISMATCH: u32 = 1 << 9;
const HEIGHT_NOT_SEQUENTIAL: u32 = 1 << 10;
const PREV_HASH_MISMATCH: u32 = 1 << 11;
const TIMESTAMP_BEFORE_PARENT: u32 = 1 << 12;
const DIFFICULTY_NOT_MET: u32 = 1 << 13;
const PROBLEM_HASH_MISMATCH: u32 = 1 << 14;
const COMMITMENT_MISMATCH: u32 = 1 << 15;
const SOLUTION_INVALID: u32 = 1 << 16;
const COMMITMENT_REPLAY: u32 = 1 << 17;

/// A timestamp may run this many seconds ahead of the validation clock.
const FUTURE_DRIFT_SECONDS: i128 = 120;
/// More transaction ids than this break TOO_MANY_TRANSACTIONS.
const MAX_TRANSACTIONS: usize = 10_000;

/// What the chain rules read of a block's parent.
#[derive(Clone, Copy)]
pub struct Parent {
    pub height: u64,
    pub hash: [u8; 32],
    pub timestamp: i64,
}

/// A batch of consecutive blocks as CSR arrays (offsets already checked).
pub struct Blocks<'a> {
    pub headers: &'a [u8],
    pub ids: &'a [u8],
    pub id_offsets: &'a [i64],
    pub numbers: &'a [i64],
    pub num_offsets: &'a [i64],
    pub targets: &'a [i64],
    pub indices: &'a [u64],
    pub idx_offsets: &'a [i64],
}

fn span<'a, T>(items: &'a [T], offsets: &[i64], b: usize) -> &'a [T] {
    &items[offsets[b] as usize..offsets[b + 1] as usize]
}

/// Not a number or infinite.
fn nonfinite(x: f64) -> bool {
    !x.is_finite()
}

/// The rules a block breaks that read the header alone (0-7 and 13).
fn header_rules(h: &Header, hash: &[u8; 32], now: i64, difficulty_target: &[u8; 32]) -> u32 {
    let mut status = 0;
    if h.version != 1 && h.version != 2 {
        status |= VERSION_UNSUPPORTED;
    }
    if h.timestamp < 0 {
        status |= TIMESTAMP_NEGATIVE;
    }
    if h.timestamp as i128 > now as i128 + FUTURE_DRIFT_SECONDS {
        status |= TIMESTAMP_FUTURE;
    }
    if nonfinite(h.work_score) || h.work_score < 0.0 {
        status |= WORK_SCORE_INVALID;
    }
    if nonfinite(h.time_asymmetry_ratio) {
        status |= TIME_ASYMMETRY_NONFINITE;
    }
    let q = h.solution_quality;
    if nonfinite(q) || !(0.0..=1.0).contains(&q) {
        status |= SOLUTION_QUALITY_INVALID;
    }
    if nonfinite(h.complexity_weight) || h.complexity_weight < 0.0 {
        status |= COMPLEXITY_WEIGHT_INVALID;
    }
    if nonfinite(h.energy_estimate_joules) || h.energy_estimate_joules < 0.0 {
        status |= ENERGY_ESTIMATE_INVALID;
    }
    // both read as 32-byte big-endian numbers: a byte-wise lexicographic compare
    if hash[..] >= difficulty_target[..] {
        status |= DIFFICULTY_NOT_MET;
    }
    status
}

/// The chain rules (10-12) against the parent.
fn chain_rules(h: &Header, parent: &Parent) -> u32 {
    let mut status = 0;
    if h.height as u128 != parent.height as u128 + 1 {
        status |= HEIGHT_NOT_SEQUENTIAL;
    }
    if h.prev_hash.0 != parent.hash {
        status |= PREV_HASH_MISMATCH;
    }
    if h.timestamp < parent.timestamp {
        status |= TIMESTAMP_BEFORE_PARENT;
    }
    status
}

/// The bitmask of every block of `blocks`, each block the parent of the next and `parent`
/// the first one's (`None`: rules 10-12 skipped for it). Rule 17 reads and extends `seen`,
/// which is changed only when every block was evaluated.
pub fn validate(blocks: &Blocks, now: i64, difficulty_target: &[u8; 32], mut parent: Option<Parent>,
                seen: &mut HashSet<[u8; 32]>) -> Result<Vec<u32>, String> {
    let n = blocks.headers.len() / HEADER_SIZE;
    let mut status = Vec::with_capacity(n);
    let mut commitments = Vec::with_capacity(n);
    let (mut buf, mut level) = (Vec::new(), Vec::new());
    for b in 0..n {
        let h = Header::decode(&blocks.headers[b * HEADER_SIZE..(b + 1) * HEADER_SIZE])?;
        let hash = h.hash(&mut buf)?;
        let mut s = header_rules(&h, &hash, now, difficulty_target);
        let (lo, hi) = (blocks.id_offsets[b] as usize, blocks.id_offsets[b + 1] as usize);
        let ids = &blocks.ids[lo * 32..hi * 32];
        if hi - lo > MAX_TRANSACTIONS {
            s |= TOO_MANY_TRANSACTIONS;
        }
        if merkle::root(ids, &mut level) != h.transactions_root.0 {
            s |= TX_ROOT_MISMATCH;
        }
        if let Some(p) = &parent {
            s |= chain_rules(&h, p);
        }
        let numbers = span(blocks.numbers, blocks.num_offsets, b);
        let indices = span(blocks.indices, blocks.idx_offsets, b);
        let problem = reveal::problem_hash(numbers, blocks.targets[b], &mut buf)?;
        if problem != h.commitment_problem_hash.0 {
            s |= PROBLEM_HASH_MISMATCH;
        }
        let solution = reveal::solution_hash(indices, &mut buf)?;
        if reveal::commitment(&problem, &h.prev_hash.0, &solution) != h.commitment_hash.0 {
            s |= COMMITMENT_MISMATCH;
        }
        if !reveal::solution_ok(numbers, blocks.targets[b], indices) {
            s |= SOLUTION_INVALID;
        }
        status.push(s);
        commitments.push(h.commitment_hash.0);
        parent = Some(Parent { height: h.height, hash, timestamp: h.timestamp });
    }
    for (s, c) in status.iter_mut().zip(commitments) {
        if !seen.insert(c) {
            *s |= COMMITMENT_REPLAY;
        }
    }
    Ok(status)
}

/// Each block's expected commitment (SPEC section 3, any reveal length), its epoch salt
/// being its header's `prev_hash`.
pub fn commitments(blocks: &Blocks) -> Result<Vec<u8>, String> {
    let n = blocks.headers.len() / HEADER_SIZE;
    let mut out = Vec::with_capacity(n * 32);
    let mut buf = Vec::new();
    for b in 0..n {
        let h = Header::decode(&blocks.headers[b * HEADER_SIZE..(b + 1) * HEADER_SIZE])?;
        let numbers = span(blocks.numbers, blocks.num_offsets, b);
        let problem = reveal::problem_hash(numbers, blocks.targets[b], &mut buf)?;
        let solution = reveal::solution_hash(span(blocks.indices, blocks.idx_offsets, b), &mut buf)?;
        out.extend_from_slice(&reveal::commitment(&problem, &h.prev_hash.0, &solution));
    }
    Ok(out)
}

/// The replay states a client holds by handle: the commitment hashes seen so far.
#[derive(Default)]
pub struct ReplayStates {
    states: HashMap<u64, HashSet<[u8; 32]>>,
    next: u64,
}

impl ReplayStates {
    /// A new empty state's handle.
    pub fn create(&mut self) -> u64 {
        self.next += 1;
        self.states.insert(self.next, HashSet::new());
        self.next
    }

    pub fn get(&mut self, handle: u64) -> Result<&mut HashSet<[u8; 32]>, String> {
        self.states.get_mut(&handle).ok_or_else(|| format!("replay: no state with handle {}", handle))
    }

    /// A new state holding what `handle`'s holds.
    pub fn clone_state(&mut self, handle: u64) -> Result<u64, String> {
        let copy = self.get(handle)?.clone();
        self.next += 1;
        self.states.insert(self.next, copy);
        Ok(self.next)
    }

    pub fn free(&mut self, handle: u64) -> Result<(), String> {
        self.states.remove(&handle).map(|_| ()).ok_or_else(|| format!("replay: no state with handle {}", handle))
    }
}
