//! SPEC section 2: the transaction merkle root.

/// BLAKE3 of the concatenation of two hashes (a 64-byte input).
fn hash_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(a);
    both[32..].copy_from_slice(b);
    *blake3::hash(&both).as_bytes()
}

/// A leaf: an id hashed once more.
pub fn leaf(id: &[u8]) -> Result<[u8; 32], String> {
    Ok(*blake3::hash(id).as_bytes())
}

/// The merkle root of `ids` (32-byte ids back to back); `level` is scratch space.
pub fn root(ids: &[u8], level: &mut Vec<[u8; 32]>) -> [u8; 32] {
    level.clear();
    level.extend(ids.chunks_exact(32).map(|id| *blake3::hash(id).as_bytes()));
    root_of_leaves(level)
}

/// The root over `level`, the leaves (overwritten): no leaves, 32 zero bytes; otherwise
/// each level hashes its pairs in order and re-hashes an odd last node alone, until one
/// is left.
fn root_of_leaves(level: &mut [[u8; 32]]) -> [u8; 32] {
    if level.is_empty() {
        return [0u8; 32];
    }
    let mut len = level.len();
    while len > 1 {
        let pairs = len / 2;
        for i in 0..pairs {
            level[i] = hash_pair(&level[2 * i], &level[2 * i + 1]);
        }
        if len % 2 == 1 {
            level[pairs] = *blake3::hash(&level[len - 1]).as_bytes();
        }
        len = pairs + len % 2;
    }
    level[0]
}

/// The roots of consecutive blocks from their leaves (`leaf` of each id, back to back):
/// block `b` holds leaves `offsets[b]..offsets[b + 1]` (offsets already checked: start at
/// 0, never decrease, end at the id count).
pub fn roots_of_leaves(leaves: &[u8], offsets: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(offsets.len().saturating_sub(1) * 32);
    let mut level: Vec<[u8; 32]> = Vec::new();
    for w in offsets.windows(2) {
        level.clear();
        level.extend(leaves[w[0] as usize * 32..w[1] as usize * 32].chunks_exact(32)
            .map(|l| <[u8; 32]>::try_from(l).unwrap()));
        out.extend_from_slice(&root_of_leaves(&mut level));
    }
    out
}
