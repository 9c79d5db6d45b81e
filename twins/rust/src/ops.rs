//! The operations of twins/PROTOCOL.md: each checks its arrays, computes, and returns the
//! reply's arrays or the message of a status-1 reply.

use crate::frame::{Array, Dtype, ItemHash, Request};
use crate::header::{self, HEADER_SIZE};
use crate::merkle;
use crate::shm::Segment;
use std::rc::Rc;
use crate::validate::{self, Blocks, Parent, ReplayStates};

/// The compared functions this twin implements, as `hello` lists them.
pub const FUNCTIONS: &str = "header_hash,merkle_root,commitment,validate";
/// The transport features `hello` offers (its second array).
pub const FEATURES: &str = "shm";

type Reply = Result<Vec<Array>, String>;

/// The arrays hashed item by item as they arrive (see `frame::Plan`): the headers of
/// `header_hash` and the ids of `merkle_root` (their leaves), when their shape is right.
pub fn plan(op: &[u8], k: u32, dtype: Dtype, dims: &[u64]) -> Option<(usize, ItemHash)> {
    match (op, k, dtype, dims) {
        (b"header_hash", 0, Dtype::U8, [_, 276]) => Some((HEADER_SIZE, header::hash_item)),
        (b"merkle_root", 0, Dtype::U8, [_, 32]) => Some((32, merkle::leaf)),
        _ => None,
    }
}

/// Each item's hash of `a`: computed as it arrived (taken from `a`), else now.
fn item_hashes(a: &mut Array, item: ItemHash, size: usize) -> Result<Vec<u8>, String> {
    match a.early.take() {
        Some(early) => early.out,
        None => {
            let mut out = Vec::with_capacity(a.data.len() / size * 32);
            for chunk in a.data.chunks_exact(size) {
                out.extend_from_slice(&item(chunk)?);
            }
            Ok(out)
        }
    }
}

/// A twin's state across requests: its replay states and the attached shared memory.
#[derive(Default)]
pub struct Twin {
    replay: ReplayStates,
    pub segment: Option<Rc<Segment>>,
}

fn arity(arrays: &[Array], op: &str, want: usize) -> Result<(), String> {
    if arrays.len() != want {
        return Err(format!("{}: expected {} arrays, got {}", op, want, arrays.len()));
    }
    Ok(())
}

/// `a` when it has `dtype`, `dims.len()` dimensions and each `Some` size of `dims`;
/// `want` spells the expected shape for the message.
fn shaped<'a>(a: &'a Array, name: &str, dtype: Dtype, dims: &[Option<u64>], want: &str)
              -> Result<&'a Array, String> {
    let fits = a.dims.len() == dims.len() && a.dims.iter().zip(dims).all(|(d, w)| w.is_none() || *w == Some(*d));
    if a.dtype != dtype || !fits {
        return Err(format!("{}: expected {}, got {}", name, want, a.describe()));
    }
    Ok(a)
}

/// CSR offsets `int64[N + 1]`: start at 0, never decrease, end at `items`; `N == blocks`
/// when given.
fn offsets(a: &Array, name: &str, items: u64, items_name: &str, blocks: Option<u64>)
           -> Result<Vec<i64>, String> {
    let off = shaped(a, name, Dtype::I64, &[None], "int64[N+1]")?.i64s();
    if off.is_empty() {
        return Err(format!("{}: expected at least one entry (0 for no blocks)", name));
    }
    if let Some(n) = blocks {
        if off.len() as u64 != n + 1 {
            return Err(format!("{}: expected {} entries (one per block, plus one), got {}", name, n + 1, off.len()));
        }
    }
    if off[0] != 0 {
        return Err(format!("{}: must start at 0, starts at {}", name, off[0]));
    }
    if let Some(k) = off.windows(2).position(|w| w[1] < w[0]) {
        return Err(format!("{}: must never decrease, decreases after entry {}", name, k));
    }
    let last = off[off.len() - 1];
    if last as u64 != items {
        return Err(format!("{}: must end at len({}) = {}, ends at {}", name, items_name, items, last));
    }
    Ok(off)
}

fn hashes(data: Vec<u8>) -> Array {
    let n = (data.len() / 32) as u64;
    Array::new(Dtype::U8, vec![n, 32], data)
}

fn handle(a: &Array, name: &str) -> Result<u64, String> {
    Ok(shaped(a, name, Dtype::U64, &[Some(1)], "uint64[1]")?.u64s()[0])
}

fn handle_reply(h: u64) -> Array {
    Array::new(Dtype::U64, vec![1], h.to_le_bytes().to_vec())
}

fn headers(a: &Array) -> Result<(&[u8], u64), String> {
    let a = shaped(a, "headers", Dtype::U8, &[None, Some(HEADER_SIZE as u64)], "uint8[N,276]")?;
    Ok((&a.data, a.dims[0]))
}

/// The reveal arrays (numbers, num_offsets, targets, indices, idx_offsets) of `n` blocks.
struct Reveals {
    numbers: Vec<i64>,
    num_offsets: Vec<i64>,
    targets: Vec<i64>,
    indices: Vec<u64>,
    idx_offsets: Vec<i64>,
}

fn reveals(a: &[Array], n: u64) -> Result<Reveals, String> {
    let numbers = shaped(&a[0], "numbers", Dtype::I64, &[None], "int64[K]")?;
    let targets = shaped(&a[2], "targets", Dtype::I64, &[Some(n)], &format!("int64[{}]", n))?;
    let indices = shaped(&a[3], "indices", Dtype::U64, &[None], "uint64[M]")?;
    Ok(Reveals {
        num_offsets: offsets(&a[1], "num_offsets", numbers.dims[0], "numbers", Some(n))?,
        idx_offsets: offsets(&a[4], "idx_offsets", indices.dims[0], "indices", Some(n))?,
        numbers: numbers.i64s(),
        targets: targets.i64s(),
        indices: indices.u64s(),
    })
}

fn blocks<'a>(headers: &'a [u8], ids: &'a [u8], id_offsets: &'a [i64], r: &'a Reveals) -> Blocks<'a> {
    Blocks {
        headers,
        ids,
        id_offsets,
        numbers: &r.numbers,
        num_offsets: &r.num_offsets,
        targets: &r.targets,
        indices: &r.indices,
        idx_offsets: &r.idx_offsets,
    }
}

/// `parent` as `uint8[P]`: none (P = 0), an anchor (P = 48: height, hash, timestamp) or
/// the parent's header (P = 276, decoded and hashed here).
fn parent(a: &Array) -> Result<Option<Parent>, String> {
    let a = shaped(a, "parent", Dtype::U8, &[None], "uint8[P]")?;
    let d = &a.data;
    match d.len() {
        0 => Ok(None),
        48 => {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&d[8..40]);
            Ok(Some(Parent {
                height: u64::from_le_bytes(d[..8].try_into().unwrap()),
                hash,
                timestamp: i64::from_le_bytes(d[40..48].try_into().unwrap()),
            }))
        }
        HEADER_SIZE => {
            let h = header::Header::decode(d)?;
            let hash = h.hash(&mut Vec::new())?;
            Ok(Some(Parent { height: h.height, hash, timestamp: h.timestamp }))
        }
        p => Err(format!("parent: expected 0, 48 or 276 bytes, got {}", p)),
    }
}

impl Twin {
    /// The reply to `req`: its arrays, or the message of a status-1 reply.
    pub fn handle(&mut self, req: &mut Request) -> Reply {
        if let Some(why) = &req.refused {
            return Err(why.clone());
        }
        let op = match std::str::from_utf8(&req.op) {
            Ok(op) if op.is_ascii() => op,
            _ => return Err(format!("unknown op {:?} (not ASCII)", String::from_utf8_lossy(&req.op))),
        };
        let a = &mut req.arrays;
        match op {
            "hello" => {
                arity(a, op, 0)?;
                let names = FUNCTIONS.as_bytes().to_vec();
                let features = FEATURES.as_bytes().to_vec();
                Ok(vec![Array::new(Dtype::U8, vec![names.len() as u64], names),
                        Array::new(Dtype::U8, vec![features.len() as u64], features)])
            }
            "shm_attach" => {
                arity(a, op, 2)?;
                let path = shaped(&a[0], "path", Dtype::U8, &[None], "uint8[L]")?;
                let size = shaped(&a[1], "size", Dtype::U64, &[Some(1)], "uint64[1]")?.u64s()[0];
                self.segment = None; // the old mapping goes once no array holds it
                self.segment = Some(Rc::new(Segment::open(&path.data, size)?));
                Ok(vec![])
            }
            "header_hash" => {
                arity(a, op, 1)?;
                headers(&a[0])?;
                Ok(vec![hashes(item_hashes(&mut a[0], header::hash_item, HEADER_SIZE)?)])
            }
            "merkle_root" => {
                arity(a, op, 2)?;
                let ids = shaped(&a[0], "ids", Dtype::U8, &[None, Some(32)], "uint8[T,32]")?;
                let off = offsets(&a[1], "offsets", ids.dims[0], "ids", None)?;
                let leaves = item_hashes(&mut a[0], merkle::leaf, 32)?;
                Ok(vec![hashes(merkle::roots_of_leaves(&leaves, &off))])
            }
            "commitment" => {
                arity(a, op, 6)?;
                let (hdr, n) = headers(&a[0])?;
                let r = reveals(&a[1..6], n)?;
                Ok(vec![hashes(validate::commitments(&blocks(hdr, &[], &[], &r))?)])
            }
            "validate" => self.validate(a),
            "replay_new" => {
                arity(a, op, 0)?;
                Ok(vec![handle_reply(self.replay.create())])
            }
            "replay_update" => {
                arity(a, op, 2)?;
                let h = handle(&a[0], "handle")?;
                let c = shaped(&a[1], "commitments", Dtype::U8, &[None, Some(32)], "uint8[K,32]")?;
                let seen = self.replay.get(h)?;
                for chunk in c.data.chunks_exact(32) {
                    seen.insert(chunk.try_into().unwrap());
                }
                Ok(vec![])
            }
            "replay_clone" => {
                arity(a, op, 1)?;
                Ok(vec![handle_reply(self.replay.clone_state(handle(&a[0], "handle")?)?)])
            }
            "replay_free" => {
                arity(a, op, 1)?;
                self.replay.free(handle(&a[0], "handle")?)?;
                Ok(vec![])
            }
            _ => Err(format!("unknown op {:?}", op)),
        }
    }

    fn validate(&mut self, a: &[Array]) -> Reply {
        arity(a, "validate", 12)?;
        let (hdr, n) = headers(&a[0])?;
        let ids = shaped(&a[1], "ids", Dtype::U8, &[None, Some(32)], "uint8[T,32]")?;
        let id_offsets = offsets(&a[2], "id_offsets", ids.dims[0], "ids", Some(n))?;
        let r = reveals(&a[3..8], n)?;
        let now = shaped(&a[8], "now", Dtype::I64, &[Some(1)], "int64[1]")?.i64s()[0];
        let target: [u8; 32] = shaped(&a[9], "difficulty_target", Dtype::U8, &[Some(32)], "uint8[32]")?
            .data[..].try_into().unwrap();
        let parent = parent(&a[10])?;
        let seen = self.replay.get(handle(&a[11], "replay")?)?;
        let status = validate::validate(&blocks(hdr, &ids.data, &id_offsets, &r), now, &target, parent, seen)?;
        let data = status.iter().flat_map(|s| s.to_le_bytes()).collect();
        Ok(vec![Array::new(Dtype::U32, vec![n], data)])
    }
}
