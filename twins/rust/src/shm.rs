//! The shared-memory segment of twins/PROTOCOL.md ("Shared memory"): a file the harness
//! names in `shm_attach`, mapped read-only with the C library's `mmap` (std only, no crate).

use std::ffi::c_void;
use std::fs::File;
use std::os::unix::io::AsRawFd;

const PROT_READ: i32 = 1;
const MAP_SHARED: i32 = 1;
/// Fault the pages in while mapping (Linux): at `shm_attach`, not in the first request.
const MAP_POPULATE: i32 = 0x8000;

extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, offset: i64) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> i32;
}

/// A read-only mapping of `len` bytes of a file, unmapped when dropped.
pub struct Segment {
    ptr: *mut c_void,
    len: usize,
}

impl Segment {
    /// Maps the first `len` bytes of the file at `path` (which must hold that many).
    pub fn open(path: &[u8], len: u64) -> Result<Segment, String> {
        use std::os::unix::ffi::OsStrExt;
        let name = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
        let file = File::open(name).map_err(|e| format!("shm_attach: cannot open {}: {}", name.display(), e))?;
        let have = file.metadata().map_err(|e| format!("shm_attach: {}", e))?.len();
        if len == 0 || len > have {
            return Err(format!("shm_attach: size {} is not within the file's {} bytes", len, have));
        }
        let len = usize::try_from(len).map_err(|_| "shm_attach: size too large".to_string())?;
        // SAFETY: a fresh read-only shared mapping of an open file; the file may close after
        let ptr = unsafe {
            mmap(std::ptr::null_mut(), len, PROT_READ, MAP_SHARED | MAP_POPULATE, file.as_raw_fd(), 0)
        };
        if ptr as isize == -1 {
            return Err(format!("shm_attach: mmap failed: {}", std::io::Error::last_os_error()));
        }
        Ok(Segment { ptr, len })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`, once
        unsafe {
            munmap(self.ptr, self.len);
        }
    }
}
