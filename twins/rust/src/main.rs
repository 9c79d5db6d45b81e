//! parity-rust-twin: SPEC.md v1 (header hashes, merkle roots, commitments, validation)
//! behind parity's process-twin protocol (twins/PROTOCOL.md) on stdin and stdout.
//!
//! With `PARITY_TWIN_TIMING=1` it writes one line per request to stderr,
//! `parity-twin-timing op=NAME ns=N`: the nanoseconds from the request fully read to its
//! reply ready (checks and compute), so a client can tell its own cost from the boundary's.

mod frame;
mod header;
mod merkle;
mod ops;
mod reveal;
mod validate;

use std::io::{self, BufReader, BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let timing = std::env::var("PARITY_TWIN_TIMING").as_deref() == Ok("1");
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut input = BufReader::with_capacity(1 << 20, stdin.lock());
    let mut output = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut twin = ops::Twin::default();
    loop {
        let req = match frame::read_request(&mut input) {
            Ok(Some(req)) => req,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                // the rest of the stream cannot be framed: answer if possible, then stop
                if let frame::FrameError::Malformed(_) = e {
                    let _ = frame::write_error(&mut output, &e.to_string());
                }
                let _ = writeln!(io::stderr(), "parity-rust-twin: {}", e);
                return ExitCode::FAILURE;
            }
        };
        let t0 = Instant::now();
        let reply = twin.handle(&req);
        let ns = t0.elapsed().as_nanos();
        let op = if timing { String::from_utf8_lossy(&req.op).into_owned() } else { String::new() };
        drop(req);
        let written = match &reply {
            Ok(arrays) => frame::write_ok(&mut output, arrays),
            Err(message) => frame::write_error(&mut output, message),
        };
        if let Err(e) = written {
            let _ = writeln!(io::stderr(), "parity-rust-twin: writing the reply failed: {}", e);
            return ExitCode::FAILURE;
        }
        if timing {
            let _ = writeln!(io::stderr(), "parity-twin-timing op={} ns={}", op, ns);
        }
    }
}
