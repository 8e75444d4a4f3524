"""`wazuh-ecr-scan`: parse the settings, hold the state lock, run passes, map failures to exit codes."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable

from wazuh_ecr_scan.aws import CallCounter, logs_client, make_session
from wazuh_ecr_scan.config import Settings, parse_args
from wazuh_ecr_scan.errors import EXIT_AWS, EXIT_INTERNAL, EXIT_OK, FatalError
from wazuh_ecr_scan.logs import log, setup_logging
from wazuh_ecr_scan.poller import Poller, Source
from wazuh_ecr_scan.reader import CloudWatchReader
from wazuh_ecr_scan.replay import ReplayReader
from wazuh_ecr_scan.sender import Sender, SocketSender, StatusHandler, StdoutSender
from wazuh_ecr_scan.state import StateStore


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse_args(argv)
    except FatalError as exc:
        setup_logging(0)
        log.error("%s", exc)
        return exc.exit_code
    setup_logging(settings.debug)
    try:
        return run(settings)
    except FatalError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.info("interrupted")
        return EXIT_OK
    except Exception:
        log.exception("internal error (please report it)")
        return EXIT_INTERNAL


def run(settings: Settings, clock: Callable[[], float] = time.time) -> int:
    state = StateStore(settings.state_db)
    sender: Sender | None = None
    status: StatusHandler | None = None
    try:
        sender = make_sender(settings)
        if isinstance(sender, SocketSender):
            status = StatusHandler(sender)
            log.addHandler(status)
        stop = _stop_on_signals()
        poller = Poller(settings, state, sender, clock, should_stop=stop.is_set)
        counter = CallCounter()
        while True:
            calls_before = counter.calls.copy()
            stats = poller.run_pass(build_sources(settings, counter))
            calls = counter.calls - calls_before
            stats.api_calls = sum(calls.values())
            log.info("%s", stats.summary_line())
            failed = stats.errors and not settings.skip_on_error
            if settings.run_once:
                print(stats.table(), file=sys.stderr)
                print(
                    "API calls: " + " ".join(f"{op}={n}" for op, n in sorted(calls.items())), file=sys.stderr
                )
                return EXIT_AWS if failed else EXIT_OK
            if stop.is_set() or stop.wait(max(settings.interval_s - stats.duration, 0)):
                log.info("stopping on signal")
                return EXIT_OK
    finally:
        if status is not None:
            log.removeHandler(status)
        if sender is not None:
            sender.close()
        state.close()


def make_sender(settings: Settings) -> Sender:
    if settings.output == "stdout":
        return StdoutSender()
    return SocketSender(settings.socket_path)


def build_sources(settings: Settings, counter: CallCounter) -> list[Source]:
    account = settings.aws_account_id or "default"
    if settings.replay:
        reader = ReplayReader(settings.replay, settings.regions[0], settings.log_groups)
        return [Source(account, reader, time_filtered=False)]
    sources = []
    for region in settings.regions:
        session = make_session(settings, region, counter)
        client = logs_client(settings, session, region, counter)
        sources.append(Source(account, CloudWatchReader(client, region)))
    return sources


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    return stop


logging.captureWarnings(True)
