//! parity-rust-twin: SPEC.md v1 (header hashes, merkle roots, commitments, validation)
//! behind parity's process-twin protocol (twins/PROTOCOL.md) on stdin and stdout.
//!
//! With `PARITY_TWIN_TIMING=1` it writes one line per request to stderr,
//! `parity-twin-timing op=NAME ns=N read_ns=R write_ns=W`: `ns` is the twin's own time
//! (argument checks and compute, including the hashing of headers and ids done as they
//! arrived), `read_ns` the rest of the time from the request's first bytes to its last,
//! `write_ns` writing the reply, so a client can tell the twin's own cost from the
//! process boundary's. With `PARITY_TWIN_OVERLAP=1` it hashes the headers of `header_hash`
//! and the ids of `merkle_root` in 1 MiB pieces as they arrive, overlapping the work with
//! the transfer; by default it waits for the whole request. It offers the shared-memory
//! transport (`shm` in `hello`): arrays read from there are hashed after the request.

mod frame;
mod header;
mod merkle;
mod ops;
mod reveal;
mod shm;
mod validate;

use std::io::{self, BufReader, BufWriter, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let timing = std::env::var("PARITY_TWIN_TIMING").as_deref() == Ok("1");
    let plan: frame::Plan = match std::env::var("PARITY_TWIN_OVERLAP").as_deref() {
        Ok("1") => ops::plan,
        _ => |_, _, _, _| None,
    };
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut input = BufReader::with_capacity(1 << 20, stdin.lock());
    let mut output = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut twin = ops::Twin::default();
    let mut pool = frame::Pool::default();
    loop {
        let mut req = match frame::read_request(&mut input, &mut pool, plan, twin.segment.as_ref()) {
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
        // work done while the request arrived is the twin's own time, not the boundary's
        let early: Duration = req.arrays.iter().filter_map(|a| a.early.as_ref()).map(|e| e.elapsed).sum();
        let t0 = Instant::now();
        let reply = twin.handle(&mut req);
        let t1 = Instant::now();
        let written = match &reply {
            Ok(arrays) => frame::write_ok(&mut output, arrays),
            Err(message) => frame::write_error(&mut output, message),
        };
        if let Err(e) = written {
            let _ = writeln!(io::stderr(), "parity-rust-twin: writing the reply failed: {}", e);
            return ExitCode::FAILURE;
        }
        if timing {
            let (read, ns, write) = ((t0 - req.started).saturating_sub(early), t1 - t0 + early, t1.elapsed());
            let _ = writeln!(io::stderr(), "parity-twin-timing op={} ns={} read_ns={} write_ns={}",
                             String::from_utf8_lossy(&req.op), ns.as_nanos(), read.as_nanos(), write.as_nanos());
        }
        pool.give(req.arrays);
    }
}
