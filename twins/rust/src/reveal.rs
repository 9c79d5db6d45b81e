//! SPEC section 3: the subset-sum reveal, its hashes, its commitment and its correctness.

use serde::Serialize;

/// The most numbers, and the most indices, a correct reveal holds.
pub const MAX_REVEAL_ITEMS: usize = 4096;

/// The problem as the node encodes it: bincode enum variant 0.
#[derive(Serialize)]
enum Problem<'a> {
    SubsetSum { numbers: &'a [i64], target: i64 },
}

/// The solution as the node encodes it: bincode enum variant 0.
#[derive(Serialize)]
enum Solution<'a> {
    SubsetSum { indices: &'a [u64] },
}

fn hash_encoding<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<[u8; 32], String> {
    buf.clear();
    bincode::serialize_into(&mut *buf, value).map_err(|e| format!("reveal: {}", e))?;
    Ok(*blake3::hash(buf).as_bytes())
}

/// `H(problem bytes)`; `buf` is scratch space.
pub fn problem_hash(numbers: &[i64], target: i64, buf: &mut Vec<u8>) -> Result<[u8; 32], String> {
    hash_encoding(&Problem::SubsetSum { numbers, target }, buf)
}

/// `H(solution bytes)`; `buf` is scratch space.
pub fn solution_hash(indices: &[u64], buf: &mut Vec<u8>) -> Result<[u8; 32], String> {
    hash_encoding(&Solution::SubsetSum { indices }, buf)
}

/// The expected commitment: `H(problem_hash || epoch_salt || solution_hash)`.
pub fn commitment(problem: &[u8; 32], epoch_salt: &[u8; 32], solution: &[u8; 32]) -> [u8; 32] {
    let mut input = [0u8; 96];
    input[..32].copy_from_slice(problem);
    input[32..64].copy_from_slice(epoch_salt);
    input[64..].copy_from_slice(solution);
    *blake3::hash(&input).as_bytes()
}

/// Whether the indices pick distinct numbers whose sum, in checked i64 arithmetic taken in
/// index order (any intermediate overflow fails), equals `target`.
pub fn solution_ok(numbers: &[i64], target: i64, indices: &[u64]) -> bool {
    if numbers.is_empty() || numbers.len() > MAX_REVEAL_ITEMS || indices.len() > MAX_REVEAL_ITEMS {
        return false;
    }
    let mut picked = vec![false; numbers.len()];
    let mut sum: i64 = 0;
    for &index in indices {
        if index >= numbers.len() as u64 || picked[index as usize] {
            return false;
        }
        picked[index as usize] = true;
        sum = match sum.checked_add(numbers[index as usize]) {
            Some(s) => s,
            None => return false,
        };
    }
    sum == target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_bytes_follow_spec() {
        let mut buf = Vec::new();
        problem_hash(&[5, -1], 4, &mut buf).unwrap();
        let mut want = vec![0u8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        for x in [5i64, -1, 4] {
            want.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(buf, want);
    }

    #[test]
    fn overflow_is_incorrect() {
        assert!(!solution_ok(&[i64::MAX, 1, -1], i64::MAX, &[0, 1, 2]));
        assert!(solution_ok(&[i64::MAX, 1, -1], i64::MAX, &[0, 2, 1]));
        assert!(!solution_ok(&[3], 3, &[0, 0]));
        assert!(solution_ok(&[3], 0, &[]));
    }
}
