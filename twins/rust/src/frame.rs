//! The framing of twins/PROTOCOL.md (version 1): requests in, replies out.
//!
//! Every integer is little-endian. A request is `"PTWQ" u16 op_len op u32 n_arrays array*`,
//! a reply `"PTWR" u8 status` then either `u32 n_arrays array*` or `u32 msg_len msg`.
//! A request array whose dtype byte has `SHM_FLAG` carries a `u64` offset into the
//! attached shared-memory segment in place of its data ("Shared memory").

use std::fmt;
use std::io::{self, Read, Write};
use std::ops::Deref;
use std::rc::Rc;
use std::time::{Duration, Instant};

const REQUEST_MAGIC: &[u8; 4] = b"PTWQ";
const REPLY_MAGIC: &[u8; 4] = b"PTWR";
/// More arrays than any operation takes, by far; beyond it a frame is refused.
const MAX_ARRAYS: u32 = 1024;
/// The largest array accepted (bytes); a larger one is refused rather than allocated.
const MAX_ARRAY_BYTES: u64 = 1 << 36;
/// In a request array's dtype byte: the data is in the shared-memory segment.
const SHM_FLAG: u8 = 0x80;
/// Offsets into the segment are multiples of this.
const SHM_ALIGN: u64 = 64;

use crate::shm::Segment;

/// An array's bytes: received from the pipe, or a range of the attached segment (kept
/// mapped while the array lives).
pub enum Data {
    Owned(Vec<u8>),
    Shared(Rc<Segment>, usize, usize),
}

impl Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Owned(v) => v,
            Data::Shared(seg, start, end) => &seg.bytes()[*start..*end],
        }
    }
}

/// The element types of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    U8,
    U32,
    I64,
    U64,
}

impl Dtype {
    fn from_code(code: u8) -> Option<Dtype> {
        match code {
            1 => Some(Dtype::U8),
            2 => Some(Dtype::U32),
            3 => Some(Dtype::I64),
            4 => Some(Dtype::U64),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Dtype::U8 => 1,
            Dtype::U32 => 2,
            Dtype::I64 => 3,
            Dtype::U64 => 4,
        }
    }

    pub fn itemsize(self) -> u64 {
        match self {
            Dtype::U8 => 1,
            Dtype::U32 => 4,
            Dtype::I64 | Dtype::U64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::U32 => "uint32",
            Dtype::I64 => "int64",
            Dtype::U64 => "uint64",
        }
    }
}

/// A hash of one item of an array (a header, an id).
pub type ItemHash = fn(&[u8]) -> Result<[u8; 32], String>;

/// Which arrays of a request to hash item by item while the rest still arrives: given the
/// op, the array's position, dtype and shape, the item size and the hash, or `None`.
pub type Plan = fn(&[u8], u32, Dtype, &[u64]) -> Option<(usize, ItemHash)>;

/// Work done on an array's items while the rest of it was still arriving (so it overlaps
/// the transfer): one 32-byte result per item, or the first item's error, and the time it
/// took.
pub struct Early {
    item: usize,
    hash: ItemHash,
    pub out: Result<Vec<u8>, String>,
    pub elapsed: Duration,
}

impl Early {
    fn consume(&mut self, chunk: &[u8]) {
        let t0 = Instant::now();
        if let Ok(out) = &mut self.out {
            for item in chunk.chunks_exact(self.item) {
                match (self.hash)(item) {
                    Ok(h) => out.extend_from_slice(&h),
                    Err(e) => {
                        self.out = Err(e);
                        break;
                    }
                }
            }
        }
        self.elapsed += t0.elapsed();
    }
}

/// One array of a request or a reply: its element type, shape and raw little-endian data
/// (and, for a request, what was computed from it as it arrived).
pub struct Array {
    pub dtype: Dtype,
    pub dims: Vec<u64>,
    pub data: Data,
    pub early: Option<Early>,
}

impl Array {
    pub fn new(dtype: Dtype, dims: Vec<u64>, data: Vec<u8>) -> Array {
        Array { dtype, dims, data: Data::Owned(data), early: None }
    }

    /// The shape as numpy prints it, e.g. `uint8[3,276]`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        format!("{}[{}]", self.dtype.name(), dims.join(","))
    }

    /// The elements of an `int64` array.
    pub fn i64s(&self) -> Vec<i64> {
        self.data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// The elements of a `uint64` array.
    pub fn u64s(&self) -> Vec<u64> {
        self.data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
    }
}

/// A request: the operation's name (possibly not ASCII: checked by the caller) and its
/// arrays; `refused` says why an array was read but not kept (it did not fit memory);
/// `started` is when its first bytes had arrived.
pub struct Request {
    pub op: Vec<u8>,
    pub arrays: Vec<Array>,
    pub refused: Option<String>,
    pub started: Instant,
}

/// Why no request could be read.
pub enum FrameError {
    /// The input ended inside a frame.
    Truncated,
    /// The input could not be read.
    Io(io::Error),
    /// The frame is malformed where the rest of it cannot be found (bad magic, unknown
    /// dtype, absurd sizes): the stream cannot be resynchronized.
    Malformed(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            FrameError::Truncated => write!(f, "input ended inside a request"),
            FrameError::Io(e) => write!(f, "reading the request failed: {}", e),
            FrameError::Malformed(m) => write!(f, "malformed request: {}", m),
        }
    }
}

fn read_exact<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<(), FrameError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })
}

fn read_u8<R: Read>(input: &mut R) -> Result<u8, FrameError> {
    let mut b = [0u8; 1];
    read_exact(input, &mut b)?;
    Ok(b[0])
}

fn read_u16<R: Read>(input: &mut R) -> Result<u16, FrameError> {
    let mut b = [0u8; 2];
    read_exact(input, &mut b)?;
    Ok(u16::from_le_bytes(b))
}

fn read_u32<R: Read>(input: &mut R) -> Result<u32, FrameError> {
    let mut b = [0u8; 4];
    read_exact(input, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64<R: Read>(input: &mut R) -> Result<u64, FrameError> {
    let mut b = [0u8; 8];
    read_exact(input, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Buffers of earlier requests, kept to receive the next ones: pages already mapped make a
/// large array cheaper to receive than fresh memory.
#[derive(Default)]
pub struct Pool(Vec<Vec<u8>>);

impl Pool {
    /// Buffers smaller than this are not kept.
    const MIN_KEPT: usize = 1 << 16;
    /// Buffers kept at most (the largest).
    const MAX_KEPT: usize = 8;

    /// The smallest kept buffer that holds `n` bytes, if any.
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        let best = self.0.iter().enumerate().filter(|(_, v)| v.capacity() >= n)
            .min_by_key(|(_, v)| v.capacity()).map(|(k, _)| k)?;
        Some(self.0.swap_remove(best))
    }

    /// Keeps the data of `arrays` for later requests.
    pub fn give(&mut self, arrays: Vec<Array>) {
        self.0.extend(arrays.into_iter().filter_map(|a| match a.data {
            Data::Owned(d) if d.capacity() >= Self::MIN_KEPT => Some(d),
            _ => None,
        }));
        self.0.sort_by_key(|v| std::cmp::Reverse(v.capacity()));
        self.0.truncate(Self::MAX_KEPT);
    }
}

/// `len` bytes in a pooled or fallibly reserved buffer, or `None` when they do not fit
/// memory (then they are read and dropped, so the next frame is still found). A new
/// buffer grows by at most 64 MiB ahead of the data received, so a request that
/// announces more than it sends ends in `Truncated`, never in an abort or a huge
/// allocation touched.
fn read_bytes<R: Read>(input: &mut R, len: u64, pool: &mut Pool, mut early: Option<&mut Early>)
                       -> Result<Option<Vec<u8>>, FrameError> {
    let step = match &early {
        Some(e) => e.item * ((1 << 20) / e.item).max(1),
        None => 64 << 20,
    };
    let wanted = usize::try_from(len).ok();
    let mut data = wanted.filter(|n| *n >= Pool::MIN_KEPT).and_then(|n| pool.take(n)).unwrap_or_default();
    let n = match wanted {
        Some(n) if data.len() >= n || data.try_reserve_exact(n - data.len()).is_ok() => n,
        _ => {
            let got = io::copy(&mut input.take(len), &mut io::sink()).map_err(FrameError::Io)?;
            return if got == len { Ok(None) } else { Err(FrameError::Truncated) };
        }
    };
    data.truncate(n);
    let mut filled = 0;
    while filled < n {
        let end = n.min(filled + step);
        if data.len() < end {
            data.resize(end, 0);
        }
        read_exact(input, &mut data[filled..end])?;
        if let Some(e) = &mut early {
            e.consume(&data[filled..end]);
        }
        filled = end;
    }
    Ok(Some(data))
}

/// The range `offset..offset + size` of `segment`, or why it is not one (this request's
/// error: the frame itself was read whole).
fn shared(segment: Option<&Rc<Segment>>, k: u32, offset: u64, size: u64) -> Result<Data, String> {
    let seg = segment.ok_or_else(|| format!("array {} is in shared memory but none is attached", k))?;
    let len = seg.bytes().len() as u64;
    match offset.checked_add(size) {
        Some(end) if offset % SHM_ALIGN == 0 && end <= len => {
            Ok(Data::Shared(Rc::clone(seg), offset as usize, end as usize))
        }
        _ => Err(format!("array {}: bytes {}..+{} are not an aligned range of the {}-byte segment",
                         k, offset, size, len)),
    }
}

/// Array `k`, or why it was not kept (its data did not fit memory and was dropped, or
/// its shared-memory range is wrong).
fn read_array<R: Read>(input: &mut R, op: &[u8], k: u32, pool: &mut Pool, plan: Plan,
                       segment: Option<&Rc<Segment>>) -> Result<Result<Array, String>, FrameError> {
    let flagged = read_u8(input)?;
    let code = flagged & !SHM_FLAG;
    let dtype = Dtype::from_code(code)
        .ok_or_else(|| FrameError::Malformed(format!("array {}: unknown dtype {}", k, code)))?;
    let ndim = read_u8(input)?;
    let mut dims = Vec::with_capacity(ndim as usize);
    let mut size = dtype.itemsize();
    for _ in 0..ndim {
        let d = read_u64(input)?;
        dims.push(d);
        size = size.checked_mul(d).filter(|s| *s <= MAX_ARRAY_BYTES).ok_or_else(|| {
            FrameError::Malformed(format!("array {}: more than {} bytes", k, MAX_ARRAY_BYTES))
        })?;
    }
    if flagged & SHM_FLAG != 0 {
        let offset = read_u64(input)?;
        return Ok(shared(segment, k, offset, size).map(|data| Array { dtype, dims, data, early: None }));
    }
    let mut early = plan(op, k, dtype, &dims).map(|(item, hash)| Early {
        item,
        hash,
        out: Ok(Vec::with_capacity((size as usize / item).saturating_mul(32).min(1 << 24))),
        elapsed: Duration::ZERO,
    });
    let data = read_bytes(input, size, pool, early.as_mut())?;
    Ok(data.map(|data| Array { dtype, dims, data: Data::Owned(data), early })
        .ok_or_else(|| format!("array {} does not fit memory", k)))
}

/// The next request, or `None` when the input ends between requests; its arrays are
/// received in buffers of `pool` when it has some large enough, and hashed item by item
/// as they arrive where `plan` says so; flagged arrays are ranges of `segment`.
pub fn read_request<R: Read>(input: &mut R, pool: &mut Pool, plan: Plan, segment: Option<&Rc<Segment>>)
                             -> Result<Option<Request>, FrameError> {
    let mut magic = [0u8; 4];
    let mut filled = 0;
    while filled < magic.len() {
        match input.read(&mut magic[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let started = Instant::now();
    if &magic != REQUEST_MAGIC {
        return Err(FrameError::Malformed(format!("bad magic {:?}", String::from_utf8_lossy(&magic))));
    }
    let op_len = read_u16(input)?;
    let mut op = vec![0u8; op_len as usize];
    read_exact(input, &mut op)?;
    let n_arrays = read_u32(input)?;
    if n_arrays > MAX_ARRAYS {
        return Err(FrameError::Malformed(format!("{} arrays (at most {})", n_arrays, MAX_ARRAYS)));
    }
    let mut arrays = Vec::with_capacity(n_arrays as usize);
    let mut refused = None;
    for k in 0..n_arrays {
        match read_array(input, &op, k, pool, plan, segment)? {
            Ok(a) => arrays.push(a),
            Err(why) => refused = refused.or(Some(why)),
        }
    }
    Ok(Some(Request { op, arrays, refused, started }))
}

/// Writes a status-0 reply holding `arrays`.
pub fn write_ok<W: Write>(out: &mut W, arrays: &[Array]) -> io::Result<()> {
    out.write_all(REPLY_MAGIC)?;
    out.write_all(&[0u8])?;
    out.write_all(&(arrays.len() as u32).to_le_bytes())?;
    for a in arrays {
        out.write_all(&[a.dtype.code(), a.dims.len() as u8])?;
        for d in &a.dims {
            out.write_all(&d.to_le_bytes())?;
        }
        out.write_all(&a.data)?;
    }
    out.flush()
}

/// Writes a status-1 reply: the twin's own error for this request.
pub fn write_error<W: Write>(out: &mut W, message: &str) -> io::Result<()> {
    out.write_all(REPLY_MAGIC)?;
    out.write_all(&[1u8])?;
    out.write_all(&(message.len() as u32).to_le_bytes())?;
    out.write_all(message.as_bytes())?;
    out.flush()
}
