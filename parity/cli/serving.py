"""``parity mode`` and ``parity serve``: the recorded codec mode and the metrics server."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from parity.cli import live
from parity.cli.args import add_parser, mode, port
from parity.errors import ParityError, StateError
from parity.modes import Mode

STATE_HELP = ("mode state database (default $PARITY_STATE, else .parity/state.db; a mode.json "
              "beside it is imported once)")


def _state(args: argparse.Namespace, initial: object = None, fallback: bool = False) -> Any:
    from parity.state import ModeState, default_state_path
    return ModeState(args.state or default_state_path(), initial=initial,  # type: ignore[arg-type]
                     fallback=fallback)


def _requested(args: argparse.Namespace) -> tuple[Mode, str] | None:
    """The mode this command was asked for (--mode, else $CODEC_MODE) and its source."""
    import os

    from parity.modes import mode_from_env
    if getattr(args, "mode", None) is not None:
        return args.mode, "--mode"
    return (mode_from_env(), "CODEC_MODE") if os.environ.get("CODEC_MODE") else None


def _notice_recorded_wins(args: argparse.Namespace, state: Any) -> None:
    """By design the recorded mode wins over --mode and $CODEC_MODE: say so, once."""
    asked = _requested(args)
    if asked is None or asked[0] == state.recorded or state.path is None:
        return
    mode, source = asked
    print(f"parity: notice: {state.path} records mode {state.recorded.label}, which wins over "
          f"{source} ({mode.label}); change it with `parity mode set {mode.label} --state "
          f"{state.path}`", file=sys.stderr, flush=True)


def _show_without_state(args: argparse.Namespace) -> bool:
    """``mode show`` with no state yet: the mode a new one would start with; creates
    nothing. False when a state exists (then it is read as usual)."""
    from parity import policy
    from parity.state import default_state_path, peek
    found = peek(args.state or default_state_path())
    if found is None:
        return False
    path, mode, source = found
    refusal = (f"already at {mode.label}: nothing to promote to" if mode == Mode.REFACTORED_ONLY
               else policy.promotion_refusal(mode, Mode(mode + 1), 0, 0) or "allowed")
    print(f"parity: no mode state at {path} yet: a new one would start in {mode.label} (from "
          f"{source}); `parity serve`, a per-call experiment or `parity mode set` creates it",
          file=sys.stderr)
    print(json.dumps({"mode": int(mode), "name": mode.label, "state": str(path), "exists": False,
                      "window_5m": {"comparisons": 0, "mismatches": 0},
                      "promotion": refusal, "history": []}, indent=2))
    return True


def _mode(args: argparse.Namespace) -> int:
    if args.action == "show" and _show_without_state(args):
        return 0
    state = _state(args)
    if args.action == "show":
        _notice_recorded_wins(args, state)
    if args.action == "promote":
        change = state.promote(args.reason)
        print(f"promoted {change['from']} -> {change['to']}")
    elif args.action == "demote":
        change = state.demote(args.reason)
        print(f"demoted {change['from']} -> {change['to']}" if change else
              f"nothing to demote: mode is {state.mode.label}")
    elif args.action == "set":
        from parity.modes import parse_mode
        if args.to is None:
            raise ParityError("mode set: name the mode (0-3 or its name)")
        change = state.set_mode(parse_mode(args.to, "mode set"), args.reason)
        print(f"mode {change['from']} -> {change['to']}" if change else
              f"mode is already {state.mode.label}")
    comparisons, mismatches = state.window()
    print(json.dumps({"mode": int(state.recorded), "name": state.recorded.label,
                      "state": str(state.path), "exists": True,
                      "window_5m": {"comparisons": comparisons, "mismatches": mismatches},
                      "promotion": state.promotion_refusal() or "allowed",
                      "history": state.last_changes(10)}, indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from parity.percall import Controller
    from parity.server import ParityServer
    controller = Controller(_state(args, initial=args.mode, fallback=True), sample=args.sample)
    _notice_recorded_wins(args, controller.state)
    if args.workload:
        from parity.corpus import open_corpus
        open_corpus(args.workload)  # a bad corpus is an error before anything is served
    try:
        server = ParityServer(controller, args.host, args.port)
    except (OSError, ValueError) as exc:  # ValueError: a host name IDNA cannot encode
        reason = getattr(exc, "strerror", None) or exc
        raise ParityError(f"cannot listen on {args.host}:{args.port} ({reason})") from None
    try:  # every route in place before the first request is answered
        live.attach(args, controller, server)
    except BaseException:
        server.stop()
        raise
    server.start()
    host, bound = server.address
    print(f"parity serve: http://{host}:{bound}/metrics, webhook POST {host}:{bound}/alertmanager, "
          f"mode {controller.mode.label}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.workload:
        from parity.workload import start_workload
        start_workload(controller, args.workload, args.rate, stop)
    last_error = ""
    try:
        while not stop.wait(0.5):
            try:
                controller.state.refresh()
                last_error = ""
            except StateError as exc:  # keep serving; say so once per distinct failure
                if str(exc) != last_error:
                    last_error = str(exc)
                    print(f"parity: warning: mode state: {exc}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    server.stop()
    controller.flush()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    m = add_parser(sub, "mode", help="show, promote, demote or set the recorded codec mode")
    m.add_argument("action", choices=["show", "promote", "demote", "set"],
                   help="show it; promote one step (gated); demote 2 or 3 to 1; set a mode")
    m.add_argument("to", nargs="?", help="with set: the mode (number or name)")
    m.add_argument("--state", help=STATE_HELP)
    m.add_argument("--reason", default="operator", help="recorded with the change")
    m.set_defaults(func=_mode)
    s = add_parser(sub, "serve", help="serve /metrics and the Alertmanager rollback webhook")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on")
    s.add_argument("--port", type=port, default=8001, help="0-65535 (0: any free port)")
    s.add_argument("--mode", type=mode, default=None,
                   help="mode for a new state (a recorded mode wins)")
    s.add_argument("--state", help=STATE_HELP)
    s.add_argument("--sample", type=float, default=1.0,
                   help="mode 2: share of calls on which legacy also runs")
    s.add_argument("--workload", help="corpus to replay through per-call experiments")
    s.add_argument("--rate", type=float, default=200.0, help="workload blocks per second")
    live.add_serve_options(s)
    s.set_defaults(func=_serve)
