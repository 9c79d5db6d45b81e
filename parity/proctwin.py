"""A twin that runs as a process (``exec:COMMAND``), spoken to as ``twins/PROTOCOL.md`` says.

:class:`ProcessTwin` has the twin interface of :mod:`parity.twins`. It starts COMMAND
(shlex-split, no shell, no inherited descriptors, its own session so a Ctrl-C reaches
the harness only) on the first request and asks ``hello`` which functions it
implements (within 30 s, or the timeout if longer). Each request is written whole, then
its reply read, within ``timeout`` seconds per 100,000 rows of the request (at least
``timeout``). A status-1
reply raises :class:`TwinProcessError` and keeps the process; an exit, a timeout, a
short or malformed reply or arrays of the wrong dtype or shape raise it too and stop
the process, which the next request starts again. Pickled, a twin is its command:
each process (a Dask worker's task) starts its own. Every process is stopped by
:meth:`ProcessTwin.close` (the engines call it) or at interpreter exit. A twin whose
``hello`` offers ``shm`` gets the large arrays of large requests in shared memory
(:mod:`parity.twinshm`; ``PARITY_TWIN_SHM=0`` keeps them in the pipe).
"""
from __future__ import annotations

import atexit
import fcntl
import os
import select
import shlex
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from typing import IO, Any, NoReturn

import numpy as np

from parity import twinshm
from parity.errors import ParityError
from parity.framing import FrameError, decode_reply, place, request_parts
from parity.twincalls import ReplayProxy, arg, check_reply, parent_bytes

DEFAULT_TIMEOUT = 60.0
TIMEOUT_ROWS = 100_000     # the timeout is per this many rows of a request
TIMEOUT_HELP = ("exec: twins: seconds a request may take, per 100,000 blocks in it and at "
                "least this (default %(default)s); a twin over it is stopped and counted as "
                "failing that request")
STARTUP_TIMEOUT = 30.0    # seconds for ``hello`` (a start loads a runtime), or the timeout
STDERR_TAIL = 5           # lines of the twin's stderr quoted in an error
PIPE_SIZE = 1 << 20       # bytes asked for each pipe (Linux's default cap for users)
PIPELINE_ROWS = 16_384    # header_hash rows per pipelined request: a reply (512 KiB) fits
_U8, _U32, _I64, _U64 = (np.dtype(t) for t in ("u1", "<u4", "<i8", "<u8"))
_LIVE: weakref.WeakSet[ProcessTwin] = weakref.WeakSet()


class TwinProcessError(ParityError):
    """A process twin's failure on one request: names the twin, the op and what went
    wrong. The harness counts it as that twin's error (raised at start-up it is a usage
    error, exit 2)."""


class ProcessTwin:
    """The twin interface over a process (see the module docstring)."""

    def __init__(self, command: str, role: str = "refactored",
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise ParityError(f"--{role} exec:{command}: {exc}") from None
        if not self.argv:
            raise ParityError(f"--{role} exec: names no command")
        if not timeout > 0:
            raise ParityError(f"--twin-timeout must be above 0, got {timeout}")
        self.command, self.role, self.timeout = command, role, timeout
        self.label = f"{role} twin exec:{command}"
        self._proc: subprocess.Popen | None = None
        self._stderr: IO[bytes] | None = None
        self._generation = 0
        self._functions: tuple[str, ...] | None = None
        self._freed: list[tuple[int, int]] = []
        self._shm: tuple[int, int] | None = None  # its thresholds, if the process offered it
        self._segment: twinshm.Segment | None = None  # attached to the current process
        self._lock = threading.RLock()
        _LIVE.add(self)

    def __del__(self) -> None:  # a twin nobody closed: its process goes with it
        try:
            self._stop(kill=True)
        except Exception:
            pass

    def __reduce__(self) -> tuple:
        return (ProcessTwin, (self.command, self.role, self.timeout))

    def __enter__(self) -> ProcessTwin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def PARITY_FUNCTIONS(self) -> tuple[str, ...]:  # the attribute module twins declare
        """The functions the twin's ``hello`` lists (starts the process if needed)."""
        with self._lock:
            if self._functions is None:
                self._ensure()
            assert self._functions is not None
            return self._functions

    # -- the twin interface -------------------------------------------------------------
    def hash_headers(self, headers: np.ndarray) -> np.ndarray:
        h = arg(headers, _U8, "headers")
        n = len(h)
        if n >= 2 * PIPELINE_ROWS and self._shared():  # pipelined in chunks (PROTOCOL.md)
            chunks = [[h[i:i + PIPELINE_ROWS]] for i in range(0, n, PIPELINE_ROWS)]
            replies = self.request_pipelined("header_hash", chunks,
                                             [[(_U8, (len(c[0]), 32))] for c in chunks], n)
            return replies[0][0] if len(replies) == 1 else np.concatenate(
                [r[0] for r in replies])
        return self.request("header_hash", [h], [(_U8, (n, 32))], n)[0]

    def merkle_roots(self, ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        off = arg(offsets, _I64, "offsets")
        n = len(off) - 1
        return self.request("merkle_root", [arg(ids, _U8, "ids"), off], [(_U8, (n, 32))],
                            n)[0]

    def commitments(self, headers: np.ndarray, numbers: np.ndarray, num_offsets: np.ndarray,
                    targets: np.ndarray, indices: np.ndarray, idx_offsets: np.ndarray
                    ) -> np.ndarray:
        arrays = self._reveal(headers, numbers, num_offsets, targets, indices, idx_offsets)
        n = len(arrays[0])
        return self.request("commitment", arrays, [(_U8, (n, 32))], n)[0]

    def validate_blocks(self, headers: np.ndarray, ids: np.ndarray, id_offsets: np.ndarray,
                        numbers: np.ndarray, num_offsets: np.ndarray, targets: np.ndarray,
                        indices: np.ndarray, idx_offsets: np.ndarray, *, now: int,
                        difficulty_target: bytes, parent: Any = None,
                        replay: ReplayProxy | None = None) -> np.ndarray:
        state = self.new_replay_state() if replay is None else replay
        if not isinstance(state, ReplayProxy) or state.twin is not self:
            raise TypeError(f"replay: not a replay state of {self.label}")
        h, nums, noff, tgt, idx, ioff = self._reveal(headers, numbers, num_offsets, targets,
                                                     indices, idx_offsets)
        target = np.frombuffer(bytes(difficulty_target), np.uint8)
        arrays = [h, arg(ids, _U8, "ids"), arg(id_offsets, _I64, "id_offsets"), nums, noff,
                  tgt, idx, ioff, np.array([now], _I64), target, parent_bytes(parent), state._h()]
        return self.request("validate", arrays, [(_U32, (len(h),))], len(h),
                            state.generation)[0]

    def new_replay_state(self) -> ReplayProxy:
        with self._lock:
            self._ensure()
            (h,) = self.request("replay_new", [], [(_U64, (1,))], 1)
            return ReplayProxy(self, int(h[0]), self._generation)

    @staticmethod
    def _reveal(headers: Any, numbers: Any, num_offsets: Any, targets: Any, indices: Any,
                idx_offsets: Any) -> list[np.ndarray]:
        return [arg(headers, _U8, "headers"), arg(numbers, _I64, "numbers"),
                arg(num_offsets, _I64, "num_offsets"), arg(targets, _I64, "targets"),
                arg(indices, _U64, "indices"), arg(idx_offsets, _I64, "idx_offsets")]

    # -- requests -----------------------------------------------------------------------
    def request(self, op: str, arrays: Sequence[np.ndarray],
                expect: Sequence[tuple[np.dtype, tuple[int, ...]]], rows: int,
                generation: int | None = None) -> list[np.ndarray]:
        """Send one request of ``rows`` rows (it scales the timeout) and return its
        reply's arrays, checked against ``expect`` (dtype, shape); a failure raises
        TwinProcessError. ``generation`` names the process a replay handle lives in."""
        with self._lock:
            self._ensure()
            if generation is not None and generation != self._generation:
                raise TwinProcessError(f"{self.label}: {op}: its replay state was lost when "
                                       "the process stopped")
            self._send_frees()
            reply = self._exchange(op, arrays, rows, placed=self._place([arrays])[0])
            return self._checked(op, reply, expect)

    def request_pipelined(self, op: str, chunks: Sequence[Sequence[np.ndarray]],
                          expects: Sequence[Sequence[tuple[np.dtype, tuple[int, ...]]]],
                          rows: int) -> list[list[np.ndarray]]:
        """Like :meth:`request` for each chunk (one request each, ``rows`` in all), but
        with every chunk's arrays in its own region of the shared segment and all the
        requests written before the first reply is read, so the copies and the replies
        overlap the twin's work (twins/PROTOCOL.md, "Pipelining"). Without the shared
        memory transport the chunks go one request after the other."""
        with self._lock:
            self._ensure()
            self._send_frees()
            placed = self._place(chunks)
            if len(chunks) > 1 and not all(placed):
                return [self.request(op, c, e, len(c[0])) for c, e in zip(chunks, expects)]
            replies = self._exchange_many(op, list(zip(chunks, placed)), rows)
            failed = next((r for r in replies if r.status == 1), None)
            if failed is not None:
                raise TwinProcessError(f"{self.label}: {op}: the twin's error: "
                                       f"{failed.message}")
            return [self._checked(op, r, e) for r, e in zip(replies, expects)]

    def _checked(self, op: str, reply: Any,
                 expect: Sequence[tuple[np.dtype, tuple[int, ...]]]) -> list[np.ndarray]:
        """A reply's arrays, or TwinProcessError (status 1 keeps the process, arrays of
        the wrong dtype or shape stop it)."""
        if reply.status == 1:
            raise TwinProcessError(f"{self.label}: {op}: the twin's error: {reply.message}")
        wrong = check_reply(reply.arrays, expect)
        if wrong:
            self._fail(op, wrong)
        return reply.arrays

    def _shared(self) -> bool:
        """Whether the running process (started if needed) takes shared memory."""
        with self._lock:
            self._ensure()
            return self._shm is not None

    def _place(self, requests: Sequence[Sequence[np.ndarray]]) -> list[dict[int, int]]:
        """Where the large arrays of large requests go in the shared segment, one region
        after the other (attaching a new, larger segment first when needed): per request,
        array number -> offset; all empty without the transport, or when the segment
        cannot be made or attached. The copies are made as each request is sent."""
        none: list[dict[int, int]] = [{} for _ in requests]
        if self._shm is None or sum(a.nbytes for r in requests for a in r) < self._shm[0]:
            return none
        out, needed = [], 0
        for arrays in requests:
            placed, used = place(arrays, self._shm[1])
            out.append({k: needed + off for k, off in placed.items()})
            needed += used
        if self._segment is None or self._segment.size < needed:
            if self._segment is not None:
                self._segment.close()
                self._segment = None
            try:
                segment = twinshm.Segment(twinshm.segment_size(needed))
            except OSError:  # /dev/shm full or not writable: the pipe then
                self._shm = None
                return none
            try:
                path = np.frombuffer(os.fsencode(segment.path), np.uint8)
                reply = self._exchange("shm_attach", [path, np.array([segment.size], _U64)], 1)
            except BaseException:
                segment.close()
                raise
            finally:
                segment.unlink()  # mapped by both sides now (or never): the name can go
            if reply.status == 1 or reply.arrays:  # it cannot map it: the pipe then
                segment.close()
                self._shm = None
                return none
            self._segment = segment
        return out

    def _exchange(self, op: str, arrays: Sequence[np.ndarray], rows: int,
                  at_least: float = 0.0, placed: dict[int, int] | None = None) -> Any:
        return self._exchange_many(op, [(arrays, placed or {})], rows, at_least)[0]

    def _exchange_many(self, op: str,
                       requests: Sequence[tuple[Sequence[np.ndarray], dict[int, int]]],
                       rows: int, at_least: float = 0.0) -> list[Any]:
        """Write every request (copying its placed arrays to the segment just before),
        then read one reply each, all within the timeout for ``rows`` rows."""
        limit = max(at_least, self.timeout * max(1.0, rows / TIMEOUT_ROWS))
        deadline = time.monotonic() + limit
        try:
            for arrays, placed in requests:
                if placed:
                    assert self._segment is not None
                    self._segment.write(arrays, placed)
                self._write(request_parts(op, arrays, placed), deadline)
            # a reply holds at most 32 bytes a row: a larger array is garbage, not a wait
            return [decode_reply(lambda n: self._read(n, deadline), max(1 << 20, 64 * rows))
                    for _ in requests]
        except TimeoutError:
            self._fail(op, f"no reply within {limit:g} s")
        except (BrokenPipeError, EOFError):
            self._fail(op, "the process exited" if self._wait_exit() is not None
                       else "the process closed its stdout")
        except FrameError as exc:
            self._fail(op, f"malformed reply ({exc})")
        except BaseException:  # Ctrl-C mid-frame: the stream is out of step, stop the process
            self._stop(kill=True)
            raise

    def _fail(self, op: str, what: str) -> NoReturn:
        """Stop the process and raise, with the end of its stderr."""
        code = self._wait_exit()
        tail = self._stderr_tail()
        self._stop(kill=True)
        status = f" (exit code {code})" if code is not None else ""
        raise TwinProcessError(f"{self.label}: {op}: {what}{status}"
                               + (f"; its stderr ends: {tail}" if tail else ""))

    def _write(self, parts: Sequence[bytes | memoryview], deadline: float) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        for part in parts:
            view, pos = memoryview(part), 0
            while pos < len(view):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [fd], [], left)[1]:
                    raise TimeoutError
                pos += os.write(fd, view[pos:])

    def _read(self, n: int, deadline: float) -> bytearray:
        """Exactly ``n`` bytes of the reply (never more: the next reply stays in the pipe)."""
        assert self._proc is not None and self._proc.stdout is not None
        stdout, out = self._proc.stdout, bytearray(n)
        view, pos = memoryview(out), 0
        while pos < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([stdout], [], [], left)[0]:
                raise TimeoutError
            got = stdout.readinto(view[pos:])  # type: ignore[attr-defined]
            if got == 0:
                raise EOFError
            pos += got or 0
        return out

    # -- the process --------------------------------------------------------------------
    def _ensure(self) -> None:
        """A running process that answered ``hello``; a fresh one if none."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._stop(kill=True)
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._stderr,
                                          close_fds=True, start_new_session=True, bufsize=0)
        except OSError as exc:
            self._stop(kill=True)
            raise TwinProcessError(f"{self.label}: cannot start {self.argv[0]!r}: "
                                   f"{exc.strerror or exc}") from None
        for f in (self._proc.stdin, self._proc.stdout):
            assert f is not None
            os.set_blocking(f.fileno(), False)
            try:  # fewer, larger pipe transfers for big batches (Linux; best effort)
                fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except (OSError, AttributeError):
                pass
        self._generation += 1
        self._freed.clear()
        reply = self._exchange("hello", [], 1, STARTUP_TIMEOUT)
        if reply.status == 1:
            self._fail("hello", f"the twin's error: {reply.message}")
        if not 1 <= len(reply.arrays) <= 2 or any(a.dtype != _U8 or a.ndim != 1
                                                  for a in reply.arrays):
            self._fail("hello", "the reply is not one or two uint8[L] arrays")
        names, *extras = (bytes(a).decode("ascii", errors="replace").split(",")
                          for a in reply.arrays)
        self._functions = tuple(n.strip() for n in names if n.strip())
        offered = "shm" in {x.strip() for x in (extras or [[]])[0]}
        self._shm = twinshm.thresholds() if offered else None

    def _wait_exit(self, seconds: float = 0.5) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 4096))
        lines = self._stderr.read().decode("utf-8", errors="replace").splitlines()
        return " | ".join(x.strip() for x in lines[-STDERR_TAIL:] if x.strip())

    def _drop(self, generation: int, handle: int) -> None:
        """A replay proxy was collected: free its handle with the next request (never
        from inside a garbage collection, which may run in the middle of a request)."""
        if generation == self._generation and self._proc is not None:
            self._freed.append((generation, handle))

    def _send_frees(self) -> None:
        freed, self._freed = self._freed, []
        for generation, handle in freed:
            if generation == self._generation:
                self.request("replay_free", [np.array([handle], _U64)], (), 1)

    def _stop(self, kill: bool) -> None:
        proc, self._proc = self._proc, None
        segment, self._segment, self._shm = self._segment, None, None
        if segment is not None:
            segment.close()
        if proc is not None:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()  # end of input: a twin exits on its own
                except OSError:
                    pass
            try:
                if kill:
                    raise subprocess.TimeoutExpired(self.argv, 0)
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        """Stop the process (its stdin closed, killed after 2 s); a later request starts
        a new one."""
        with self._lock:
            self._stop(kill=False)


@atexit.register
def _close_all() -> None:
    for twin in list(_LIVE):
        twin.close()
