//! SPEC section 1: the block header, its bincode 1.x encoding and its hash.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 32-byte field (a hash, a root, a miner id). bincode writes a fixed array as its bytes
/// with no length prefix; so does this, as four little-endian u64 words (the same bytes,
/// a quarter of the writer calls).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hash32(pub [u8; 32]);

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut words = serializer.serialize_tuple(4)?;
        for w in self.0.chunks_exact(8) {
            words.serialize_element(&u64::from_le_bytes(w.try_into().unwrap()))?;
        }
        words.end()
    }
}

struct Hash32Visitor;

impl<'de> Visitor<'de> for Hash32Visitor {
    type Value = Hash32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "32 bytes as four little-endian u64 words")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Hash32, A::Error> {
        let mut out = [0u8; 32];
        for (k, w) in out.chunks_exact_mut(8).enumerate() {
            let word: u64 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(k, &self))?;
            w.copy_from_slice(&word.to_le_bytes());
        }
        Ok(Hash32(out))
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hash32, D::Error> {
        deserializer.deserialize_tuple(4, Hash32Visitor)
    }
}

/// Bytes of an encoded header.
pub const HEADER_SIZE: usize = 276;

/// The header's fields in encoding order; bincode 1.x writes them as fixed-width
/// little-endian integers and IEEE-754 bits, fixed arrays without a length prefix.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Header {
    pub version: u32,
    pub height: u64,
    pub prev_hash: Hash32,
    pub timestamp: i64,
    pub transactions_root: Hash32,
    pub solutions_root: Hash32,
    pub commitment_hash: Hash32,
    pub commitment_problem_hash: Hash32,
    pub work_score: f64,
    pub miner: Hash32,
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

/// The hash the `header_hash` function answers for one encoded header.
pub fn hash_item(raw: &[u8]) -> Result<[u8; 32], String> {
    let header = Header::decode(raw)?;
    let mut buf = Vec::with_capacity(HEADER_SIZE);
    Ok(planted(&header, header.hash(&mut buf)?))
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
