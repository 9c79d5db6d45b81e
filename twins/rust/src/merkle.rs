//! SPEC section 2: the transaction merkle root.

/// BLAKE3 of the concatenation of two hashes (a 64-byte input).
fn hash_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(a);
    both[32..].copy_from_slice(b);
    *blake3::hash(&both).as_bytes()
}

/// The merkle root of `ids` (32-byte ids back to back); `level` is scratch space.
///
/// No ids: 32 zero bytes. Otherwise every id is hashed once to make the leaves, then each
/// level hashes its pairs in order and re-hashes an odd last node alone, until one is left.
pub fn root(ids: &[u8], level: &mut Vec<[u8; 32]>) -> [u8; 32] {
    level.clear();
    level.extend(ids.chunks_exact(32).map(|id| *blake3::hash(id).as_bytes()));
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

/// The roots of consecutive blocks: block `b` holds ids `offsets[b]..offsets[b + 1]`
/// (offsets already checked: start at 0, never decrease, end at the id count).
pub fn roots(ids: &[u8], offsets: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(offsets.len().saturating_sub(1) * 32);
    let mut level = Vec::new();
    for w in offsets.windows(2) {
        let (lo, hi) = (w[0] as usize * 32, w[1] as usize * 32);
        out.extend_from_slice(&root(&ids[lo..hi], &mut level));
    }
    out
}
