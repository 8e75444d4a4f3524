"""`wazuh-ecr-scan`: parse the settings, hold the state lock, run passes, map failures to exit codes.

`wazuh-ecr-scan install|uninstall ...` go to install.py; `--check-config` to check_config.py. With
--config, each `<service type="cloudwatchlogs">` block is read in every pass with its own credentials,
regions, groups and state-DB account label (one Poller per block).
"""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace

from wazuh_ecr_scan import discard, encode
from wazuh_ecr_scan.aws import CallCounter, Clients, resolve_account
from wazuh_ecr_scan.cli_args import CommandLine, read_command_line
from wazuh_ecr_scan.errors import (
    EXIT_AWS,
    EXIT_CREDENTIALS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AwsError,
    CredentialsError,
    FatalError,
)
from wazuh_ecr_scan.events import Page
from wazuh_ecr_scan.logs import PROGRESS, local_only, log, setup_logging
from wazuh_ecr_scan.metrics import PassStats
from wazuh_ecr_scan.poller import Poller, Source
from wazuh_ecr_scan.reader import CloudWatchReader, Reader
from wazuh_ecr_scan.replay import ReplayReader
from wazuh_ecr_scan.sender import STATUS, Sender, SocketSender, StdoutSender
from wazuh_ecr_scan.settings import RunSettings, ServiceSettings, run_settings
from wazuh_ecr_scan.state import MEMORY, StateStore, throwaway_copy

SUBCOMMANDS = ("install", "uninstall")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        from wazuh_ecr_scan import install

        return install.main(argv)
    command_line = read_command_line(argv)
    log.addHandler(STATUS)
    try:
        return _main(command_line)
    finally:
        log.removeHandler(STATUS)
        # Every exit path: WARNING and ERROR lines logged while no run sender was open reach analysisd.
        STATUS.deliver_pending(command_line.status_socket())


def _main(command_line: CommandLine) -> int:
    try:
        _setup_early_logging(command_line)
        settings = run_settings(command_line)
    except FatalError as exc:
        log.error("%s", exc)
        return exc.exit_code
    try:
        if settings.check_config:
            from wazuh_ecr_scan import check_config

            return check_config.run(settings)
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


def _setup_early_logging(command_line: CommandLine) -> None:
    """Logging from --debug and --log_file before the settings are checked, so a configuration error
    reaches the log file too: under modulesd (ignore_output) stderr goes nowhere."""
    setup_logging(0)
    setup_logging(command_line.debug_level(), log_file=command_line.log_file)


def run(settings: RunSettings, clock: Callable[[], float] = time.time) -> int:
    if _reads_a_copy(settings):
        with tempfile.TemporaryDirectory(prefix="wazuh-ecr-scan-") as directory:
            log.info(
                "--output stdout without --state_db: reading the state of %s and keeping this run's changes"
                " in a throw-away copy, so the service still sends everything printed here; give"
                " --state_db to commit to a state file",
                settings.state_db,
            )
            return _run(replace(settings, state_db=throwaway_copy(settings.state_db, directory)), clock)
    return _run(settings, clock)


def _reads_a_copy(settings: RunSettings) -> bool:
    return settings.output == "stdout" and not settings.state_db_given and settings.state_db != MEMORY


def _run(settings: RunSettings, clock: Callable[[], float]) -> int:
    if settings.disabled:
        log.info("module disabled in %s (<disabled>yes</disabled>): nothing to read", settings.config_file)
        return EXIT_OK
    encode.use_agent_limit(encode.is_agent(settings.wazuh_path))  # agentd forwards less than analysisd reads
    state = StateStore(settings.state_db, settings.lock_wait_s)
    sender: Sender | None = None
    try:
        sender = make_sender(settings)
        if isinstance(sender, SocketSender):
            STATUS.attach(sender)
        stop = _stop_on_signals()
        counted = _ProgressSender(sender) if PROGRESS.enabled else sender
        pollers = _pollers(settings, state, counted, clock, stop)
        for service in settings.services:
            for warning in discard.startup_warnings(service.discard):
                # a setting, not a fault: not an alert at every pass
                log.warning("%s: %s", service.origin, warning, **local_only())
        clients = Clients(CallCounter())
        counter = clients.counter
        if not settings.run_once and not settings.run_on_start:
            log.info("waiting %ds (run_on_start is no) before the first pass", settings.interval_s)
            if stop.wait(settings.interval_s):
                return EXIT_OK
        while True:
            calls_before = counter.calls.copy()
            stats, credential_failures = _run_pass(pollers, clients)
            calls = counter.calls - calls_before
            stats.api_calls = sum(calls.values())
            if stats.interrupted:
                log.warning(
                    "pass interrupted: %d of %d groups read; the next pass reads the rest from where this"
                    " one stopped",
                    stats.completed,
                    stats.listed,
                )
            log.info("%s", stats.summary_line())
            if settings.run_once:
                _print_summary(stats, calls)
            if stats.interrupted:
                return EXIT_INTERRUPTED
            if settings.run_once:
                if credential_failures:
                    return EXIT_CREDENTIALS
                return EXIT_AWS if stats.errors and not settings.skip_on_error else EXIT_OK
            if stop.is_set() or stop.wait(max(settings.interval_s - stats.duration, 0)):
                log.info("stopping on signal")
                return EXIT_OK
    finally:
        PROGRESS.clear()
        STATUS.detach()
        if sender is not None:
            sender.close()
        state.close()


def _pollers(
    settings: RunSettings,
    state: StateStore,
    sender: Sender,
    clock: Callable[[], float],
    stop: threading.Event,
) -> list[tuple[ServiceSettings, Poller]]:
    """One Poller per service block; they share the pass's claims on groups (see Poller._claim)."""
    claims: dict = {}
    labels = [service.account for service in settings.services]
    pollers = []
    for n, service in enumerate(settings.services):
        others = frozenset(labels[:n] + labels[n + 1 :])
        poller = Poller(service, state, sender, clock, stop.is_set, claims=claims, other_labels=others)
        pollers.append((service, poller))
    return pollers


def _run_pass(pollers: list[tuple[ServiceSettings, Poller]], clients: Clients) -> tuple[PassStats, int]:
    """One pass over every service block. With several blocks, one account's rejected credentials are
    logged and the other accounts are still read; with one block the CredentialsError ends the run."""
    total = PassStats()
    failures = 0
    if pollers and pollers[0][1].claims is not None:
        pollers[0][1].claims.clear()  # a new pass: every group may be read again
    for settings, poller in pollers:
        if poller.should_stop():
            total.interrupted = True
            break  # a signal: no new credentials or listings for the remaining blocks
        try:
            stats = poller.run_pass(build_sources(settings, clients))
        except CredentialsError as exc:
            clients.forget(settings)
            if len(pollers) == 1:
                raise
            failures += 1
            total.errors += 1
            log.error("%s (account %s, %s)", exc, settings.account, settings.origin)
            continue
        except AwsError as exc:  # the account could not be told: the block is skipped this pass
            total.errors += 1
            log.error("%s (%s)", exc, settings.origin)
            continue
        total.groups.extend(stats.groups)
        total.listed += stats.listed
        total.completed += stats.completed
        total.interrupted = total.interrupted or stats.interrupted
        total.errors += stats.errors
        total.warnings += stats.warnings
        total.duration += stats.duration
    return total, failures


def _print_summary(stats: PassStats, calls: Counter[str]) -> None:
    PROGRESS.clear()
    print(stats.table(), file=sys.stderr)
    made = " ".join(f"{op}={n}" for op, n in sorted(calls.items())) or "none"
    print(f"API calls: {made}", file=sys.stderr)


def make_sender(settings: RunSettings) -> Sender:
    if settings.output == "stdout":
        return StdoutSender()
    return SocketSender(settings.socket_path)


def build_sources(settings: ServiceSettings, clients: Clients) -> list[Source]:
    if settings.replay:
        # A recording has no credentials to resolve: its state is kept under the block's label.
        reader = ReplayReader(settings.replay, settings.regions[0], settings.log_groups)
        return [Source(settings.account, _wrap(reader, settings), time_filtered=False)]
    sources = []
    account: str | None = None
    for region in settings.regions:
        session, client = clients.get(settings, region)
        account = account or resolve_account(settings, session, region, clients.counter)
        sources.append(Source(account, _wrap(CloudWatchReader(client, region), settings)))
    return sources


def _wrap(reader: Reader, settings: ServiceSettings) -> Reader:
    if PROGRESS.enabled:
        reader = _ProgressReader(reader, settings.account)
    return reader


class _ReaderView:
    """A reader seen through a filter: each method of the Reader protocol, passed on unless overridden."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self.region = reader.region

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]:
        return self._reader.groups(names, prefix)

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        return self._reader.pages(log_group, start_ms)

    def delete_stream(self, log_group: str, log_stream: str) -> None:
        self._reader.delete_stream(log_group, log_stream)


class _PassProgress:
    """What the terminal progress line shows: the group being read and the events sent so far."""

    def __init__(self) -> None:
        self.sent = 0
        self.group = ""
        self.where = ""

    def show(self, force: bool = False) -> None:
        PROGRESS.show(f"{self.where} {self.group}: {self.sent} events sent", force=force)


_PROGRESS_STATE = _PassProgress()


class _ProgressReader(_ReaderView):
    def __init__(self, reader: Reader, account: str) -> None:
        super().__init__(reader)
        self.account = account
        self._positions: dict[str, int] = {}

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]:
        groups = self._reader.groups(names, prefix)
        self._positions = {group: n for n, group in enumerate(groups, 1)}
        return groups

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        position = f"{self._positions.get(log_group, 0)}/{len(self._positions)}"
        _PROGRESS_STATE.group = log_group
        _PROGRESS_STATE.where = f"[{self.account} {self._reader.region} {position}]"
        _PROGRESS_STATE.show(force=True)
        return self._reader.pages(log_group, start_ms)


class _ProgressSender:
    """Counts events for the progress line; status lines and closing go to the real sender."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender

    def send(self, datagram: bytes) -> None:
        self.sender.send(datagram)
        _PROGRESS_STATE.sent += 1
        _PROGRESS_STATE.show()

    def send_status(self, line: str) -> None:
        self.sender.send_status(line)

    def flush(self) -> None:
        self.sender.flush()

    def close(self) -> None:
        self.sender.close()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    return stop


logging.captureWarnings(True)
