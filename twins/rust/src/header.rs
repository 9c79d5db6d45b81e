//! SPEC section 1: the block header, its bincode 1.x encoding and its hash.

use serde::{Deserialize, Serialize};

/// Bytes of an encoded header.
pub const HEADER_SIZE: usize = 276;

/// The header's fields in encoding order; bincode 1.x writes them as fixed-width
/// little-endian integers and IEEE-754 bits, fixed arrays without a length prefix.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Header {
    pub version: u32,
    pub height: u64,
    pub prev_hash: [u8; 32],
    pub timestamp: i64,
    pub transactions_root: [u8; 32],
    pub solutions_root: [u8; 32],
    pub commitment_hash: [u8; 32],
    pub commitment_problem_hash: [u8; 32],
    pub work_score: f64,
    pub miner: [u8; 32],
    pub nonce: u64,
    pub solve_time_us: u64,
    pub verify_time_us: u64,
    pub time_asymmetry_ratio: f64,
    pub solution_quality: f64,
    pub complexity_weight: f64,
    pub energy_estimate_joules: f64,
}

impl Header {
    /// Decodes one encoded header (exactly `HEADER_SIZE` bytes).
    pub fn decode(raw: &[u8]) -> Result<Header, String> {
        if raw.len() != HEADER_SIZE {
            return Err(format!("a header is {} bytes, got {}", HEADER_SIZE, raw.len()));
        }
        bincode::deserialize(raw).map_err(|e| format!("header: {}", e))
    }

    /// The bincode encoding, written into `buf` (cleared first).
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), String> {
        buf.clear();
        bincode::serialize_into(&mut *buf, self).map_err(|e| format!("header: {}", e))?;
        if buf.len() != HEADER_SIZE {
            return Err(format!("header encoded to {} bytes, not {}", buf.len(), HEADER_SIZE));
        }
        Ok(())
    }

    /// The header hash (the block id): BLAKE3 of the encoding; `buf` is scratch space.
    pub fn hash(&self, buf: &mut Vec<u8>) -> Result<[u8; 32], String> {
        self.encode_into(buf)?;
        Ok(*blake3::hash(buf).as_bytes())
    }
}

/// The header hash of every encoded header laid out back to back in `raw`.
pub fn hash_headers(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len() / HEADER_SIZE * 32);
    let mut buf = Vec::with_capacity(HEADER_SIZE);
    for chunk in raw.chunks_exact(HEADER_SIZE) {
        let header = Header::decode(chunk)?;
        let hash = header.hash(&mut buf)?;
        out.extend_from_slice(&planted(&header, hash));
    }
    Ok(out)
}

/// The planted bug of the `planted-bug` feature: bit 0 of byte 0 flipped for every header
/// whose height is a multiple of `PLANTED_EVERY`. Without the feature, the hash unchanged.
#[cfg(feature = "planted-bug")]
fn planted(header: &Header, mut hash: [u8; 32]) -> [u8; 32] {
    if header.height % PLANTED_EVERY == 0 {
        hash[0] ^= 1;
    }
    hash
}

#[cfg(not(feature = "planted-bug"))]
fn planted(_header: &Header, hash: [u8; 32]) -> [u8; 32] {
    hash
}

/// Heights whose `header_hash` the planted bug flips.
#[cfg(feature = "planted-bug")]
pub const PLANTED_EVERY: u64 = 50;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_276_bytes_and_round_trips() {
        let mut raw = [0u8; HEADER_SIZE];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        raw[180..188].copy_from_slice(&0x7ff8_0000_dead_beefu64.to_le_bytes()); // a NaN payload
        let header = Header::decode(&raw).unwrap();
        assert_eq!(header.height, u64::from_le_bytes(raw[4..12].try_into().unwrap()));
        let mut buf = Vec::new();
        header.encode_into(&mut buf).unwrap();
        assert_eq!(&buf[..], &raw[..]);
    }
}
