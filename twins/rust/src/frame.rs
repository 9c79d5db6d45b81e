//! The framing of twins/PROTOCOL.md (version 1): requests in, replies out.
//!
//! Every integer is little-endian. A request is `"PTWQ" u16 op_len op u32 n_arrays array*`,
//! a reply `"PTWR" u8 status` then either `u32 n_arrays array*` or `u32 msg_len msg`.

use std::fmt;
use std::io::{self, Read, Write};

const REQUEST_MAGIC: &[u8; 4] = b"PTWQ";
const REPLY_MAGIC: &[u8; 4] = b"PTWR";
/// More arrays than any operation takes, by far; beyond it a frame is refused.
const MAX_ARRAYS: u32 = 1024;
/// The largest array accepted (bytes); a larger one is refused rather than allocated.
const MAX_ARRAY_BYTES: u64 = 1 << 36;

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

/// One array of a request or a reply: its element type, shape and raw little-endian data.
pub struct Array {
    pub dtype: Dtype,
    pub dims: Vec<u64>,
    pub data: Vec<u8>,
}

impl Array {
    pub fn new(dtype: Dtype, dims: Vec<u64>, data: Vec<u8>) -> Array {
        Array { dtype, dims, data }
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
/// arrays; `refused` says why an array was read but not kept (it did not fit memory).
pub struct Request {
    pub op: Vec<u8>,
    pub arrays: Vec<Array>,
    pub refused: Option<String>,
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

/// `len` bytes in a fallibly reserved buffer, or `None` when they do not fit memory (then
/// they are read and dropped, so the next frame is still found). A request that announces
/// more than it sends ends in `Truncated`, never an abort.
fn read_bytes<R: Read>(input: &mut R, len: u64) -> Result<Option<Vec<u8>>, FrameError> {
    let mut data = Vec::new();
    let fits = usize::try_from(len).map(|n| data.try_reserve_exact(n).is_ok()).unwrap_or(false);
    let got = if fits {
        input.take(len).read_to_end(&mut data).map_err(FrameError::Io)? as u64
    } else {
        io::copy(&mut input.take(len), &mut io::sink()).map_err(FrameError::Io)?
    };
    if got != len {
        return Err(FrameError::Truncated);
    }
    Ok(if fits { Some(data) } else { None })
}

/// Array `k`, or `None` when its data did not fit memory (and was dropped).
fn read_array<R: Read>(input: &mut R, k: u32) -> Result<Option<Array>, FrameError> {
    let code = read_u8(input)?;
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
    Ok(read_bytes(input, size)?.map(|data| Array::new(dtype, dims, data)))
}

/// The next request, or `None` when the input ends between requests.
pub fn read_request<R: Read>(input: &mut R) -> Result<Option<Request>, FrameError> {
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
        match read_array(input, k)? {
            Some(a) => arrays.push(a),
            None => refused = Some(format!("array {} does not fit memory", k)),
        }
    }
    Ok(Some(Request { op, arrays, refused }))
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
