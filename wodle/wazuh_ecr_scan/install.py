"""`wazuh-ecr-scan install|uninstall --wazuh_path DIR`: put the module into a Wazuh installation.

Layout and modes follow Wazuh's own installer (src/init/inst-functions.sh): wodle scripts root:wazuh 0750
under wodles/ (as wodles/aws/aws-s3 and its modules), user rules and decoders wazuh:wazuh 0660 in
etc/rules and etc/decoders (as local_rules.xml). Without a `wazuh` group (nor Wazuh 3.x's `ossec`),
ownership is left as it is. Running it again changes nothing that is already in place.

It runs as root in directories the wazuh user can write (etc/rules, etc/decoders): every file is written
through descriptors (temporary file created O_EXCL|O_NOFOLLOW beside its target, mode and owner set on the
descriptor, renamed into place), and no path below the Wazuh root is followed through a symbolic link.

It needs only the standard library: on a bare system it runs before boto3, lxml and dateutil exist, and
makes the private venv (wodles/ecr-scan/venv) that will hold them. It reads ossec.conf with the module's
own reader (ossec_config.ossec_conf_report, lxml): in this process when it can import it, else in the
Python the launcher will use (which has lxml), given only this package on its path and run isolated (-I).
With no such Python it still prints the block and the <ruleset> lines, and warns that ossec.conf was not
checked.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import grp
import importlib
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TypeVar

from wazuh_ecr_scan import __version__
from wazuh_ecr_scan.errors import EXIT_INTERNAL, EXIT_OK, ConfigError, FatalError
from wazuh_ecr_scan.logs import log, setup_logging

WODLE_DIR = Path("wodles", "ecr-scan")
LAUNCHER = "ecr-scan"
PACKAGE = "wazuh_ecr_scan"
CONFIG = Path("etc", "ecr-scan.conf")
OSSEC_CONF = Path("etc", "ossec.conf")
MANIFEST = "installed-files.txt"
RULESET_DIRS = {"rules": Path("etc", "rules"), "decoders": Path("etc", "decoders")}
EMBEDDED_PYTHON = Path("framework", "python", "bin", "python3")
# The interpreter `install` ran with (a venv, ~/.local): the launcher tries it after Wazuh's embedded
# Python, since modulesd's PATH would not lead to it.
PYTHON_RECORD = "python.path"
# PATH of a service started by systemd: what the launcher sees under modulesd, not the installer's PATH.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VERSION_PROBE = "import sys; assert sys.version_info >= (3, 10)"
PROBE = f"{VERSION_PROBE}; import boto3, lxml, dateutil"
# install_requires of setup.cfg (a test keeps them equal): what the private venv gets.
REQUIREMENTS = ("boto3>=1.26", "python-dateutil>=2.8", "lxml>=4.9")
VENV = WODLE_DIR / "venv"
VENV_PYTHON = VENV / "bin" / "python3"
# config.DEFAULT_WAZUH_PATH: not imported, config needs dateutil and install must run without it.
DEFAULT_WAZUH_PATH = "/var/ossec"
DEFAULT_PATH_IN_EXAMPLE = "/var/ossec"
T = TypeVar("T")


class InstallError(FatalError):
    """Install could not complete (exit 1): a step that needs the administrator (a venv that pip could not
    fill, an unsafe directory)."""


@dataclass(frozen=True)
class Owner:
    """uid/gid to give a file; -1 leaves that part as it is."""

    uid: int = -1
    gid: int = -1


@dataclass(frozen=True)
class Owners:
    wodle: Owner  # root:wazuh
    ruleset: Owner  # wazuh:wazuh
    group_name: str | None = None


@dataclass(frozen=True)
class ProjectFiles:
    """What install copies: the running package, and the launcher, rules, decoders and examples of the
    project tree it comes from (a checkout or an unpacked sdist)."""

    root: Path
    package: Path = field(default_factory=lambda: Path(__file__).resolve().parent)

    @property
    def launcher(self) -> Path:
        return self.root / "wodle" / LAUNCHER

    @property
    def config_template(self) -> Path:
        return self.root / "wodle" / "ecr-scan.conf"

    @property
    def example(self) -> Path:
        return self.root / "ossec.conf.example"

    def ruleset(self, kind: str) -> list[Path]:
        return sorted((self.root / kind).glob("*.xml"))


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    installed: list[Path] = field(default_factory=list)
    ruleset_changed: bool = False  # analysisd reads rules and decoders at start: restart only then

    def record(self, status: str, relative: Path, detail: str = "") -> None:
        self.lines.append(f"  {status:<9} {relative}{detail}")
        self.installed.append(relative)


def main(argv: list[str], make_venv: VenvMaker | None = None) -> int:
    """`make_venv` builds the private venv when no Python can run the module (tests inject one)."""
    setup_logging(0)
    try:
        args = _parser().parse_args(argv)
        root = _wazuh_tree(Path(args.wazuh_path))
        if args.command == "uninstall":
            uninstall(root, purge=args.purge, force=args.force)
            return EXIT_OK
        source = ProjectFiles(Path(args.source).resolve() if args.source else _project_root())
        install(
            source,
            root,
            wazuh_owners(),
            ruleset=_ruleset_wanted(args, root),
            wodle=not args.ruleset_only,
            make_venv=None if args.no_venv else (make_venv or build_venv),
        )
    except FatalError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except OSError as exc:
        log.error("%s: %s (run it as root?)", exc.filename or "install", exc.strerror)
        return EXIT_INTERNAL
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """As config.StrictParser (not imported: config needs dateutil): errors are exit 2, one log line."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"bad arguments: {message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wazuh-ecr-scan", description="Install the module into a Wazuh installation, or remove it."
    )
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser(
        "install", help="copy launcher, module, rules and decoders; print the ossec.conf block"
    )
    add.add_argument("--wazuh_path", default=DEFAULT_WAZUH_PATH)
    add.add_argument("--source", help="project tree holding wodle/, rules/, decoders/ (default: this one)")
    group = add.add_mutually_exclusive_group()
    group.add_argument("--ruleset-only", dest="ruleset_only", action="store_true", help="manager of agents")
    group.add_argument("--no-ruleset", dest="no_ruleset", action="store_true", help="module only")
    add.add_argument(
        "--no-venv",
        dest="no_venv",
        action="store_true",
        help=f"never create {VENV}/ (default: created when no Python has the dependencies)",
    )
    remove = sub.add_parser("uninstall", help="remove what install copied (state and config kept)")
    remove.add_argument("--wazuh_path", default=DEFAULT_WAZUH_PATH)
    remove.add_argument("--purge", action="store_true", help="also remove the state DB and etc/ecr-scan.conf")
    remove.add_argument(
        "--force", action="store_true", help="remove it even though ossec.conf still runs the module"
    )
    return p


# -- install ---------------------------------------------------------------------------------------


def install(
    source: ProjectFiles,
    root: Path,
    owners: Owners,
    ruleset: bool = True,
    wodle: bool = True,
    make_venv: VenvMaker | None = None,
) -> Outcome:
    _check_source(source, wodle, ruleset)
    outcome = Outcome()
    print(f"wazuh-ecr-scan {__version__}: installing into {root} ({_kind(root)})")
    if wodle:
        _install_wodle(source, root, owners, outcome)
        _settle_python(root, owners, outcome, make_venv)
    if ruleset:
        _install_ruleset(source, root, owners, outcome)
    _write_manifest(root, owners, outcome)  # --ruleset-only too: uninstall must find the rules
    print("\n".join(outcome.lines))
    if owners.group_name is None:
        print("  note: no 'wazuh' (or 'ossec') group on this host: ownership left as it is; modes set")
    chosen = None
    if wodle:
        chosen = _launcher_python(root)
        _report_python(root, chosen)

    def reader_python() -> Path | None:  # the launcher's: found above when the wodle was installed
        found = chosen if wodle else _launcher_python(root)
        return found[0] if found else None

    facts = read_ossec_conf(root / OSSEC_CONF, reader_python)
    _report_ossec_conf(
        source, root, facts, wodle=wodle, ruleset=ruleset, ruleset_changed=outcome.ruleset_changed
    )
    return outcome


def _install_wodle(source: ProjectFiles, root: Path, owners: Owners, outcome: Outcome) -> None:
    _ensure_dir(root, WODLE_DIR, 0o750, owners.wodle)
    launcher = WODLE_DIR / LAUNCHER
    status = copy_file(source.launcher.read_bytes(), root, launcher, 0o750, owners.wodle)
    outcome.record(status, launcher, " (0750)")
    _install_package(source.package, root, owners, outcome)
    if not _exists(root, CONFIG):
        copy_file(source.config_template.read_bytes(), root, CONFIG, 0o640, owners.wodle)
        outcome.lines.append(f"  {'created':<9} {CONFIG} (0640; edit it: regions, groups, credentials)")
    else:
        outcome.lines.append(f"  {'kept':<9} {CONFIG} (yours: never overwritten)")


def _install_package(package: Path, root: Path, owners: Owners, outcome: Outcome) -> None:
    relative = WODLE_DIR / PACKAGE
    _ensure_dir(root, relative, 0o750, owners.wodle)
    target = root / relative
    wanted = {p.name: p for p in sorted(package.glob("*.py"))}
    counts: dict[str, int] = {}
    for name, path in wanted.items():
        status = copy_file(path.read_bytes(), root, relative / name, 0o750, owners.wodle)
        counts[status] = counts.get(status, 0) + 1
        outcome.installed.append(relative / name)
    for stale in sorted(target.glob("*.py")):
        if stale.name not in wanted:  # a module that an older version had
            stale.unlink()
            counts["removed"] = counts.get("removed", 0) + 1
    shutil.rmtree(target / "__pycache__", ignore_errors=True)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    outcome.lines.append(f"  {'module':<9} {relative}/ ({len(wanted)} files: {summary})")


def _install_ruleset(source: ProjectFiles, root: Path, owners: Owners, outcome: Outcome) -> None:
    for kind, directory in RULESET_DIRS.items():
        files = source.ruleset(kind)
        if not files:
            outcome.lines.append(f"  {'none':<9} {kind}/*.xml in {source.root}")
            continue
        _ensure_dir(root, directory, 0o770, owners.ruleset, create_only=True)
        for path in files:
            relative = directory / path.name
            status = copy_file(path.read_bytes(), root, relative, 0o660, owners.ruleset)
            outcome.record(status, relative, " (0660)")
            outcome.ruleset_changed |= status != "unchanged"


def copy_file(data: bytes, root: Path, relative: Path, mode: int, owner: Owner) -> str:
    """Write `root/relative` atomically if its content differs; set mode and owner either way.

    Never follows a symbolic link: the directory is opened component by component with O_NOFOLLOW, the
    current file is opened O_NOFOLLOW (a link, a FIFO or a hard-linked file there is replaced, not used),
    the new content goes to a temporary file created O_EXCL|O_NOFOLLOW with an unpredictable name, mode
    and owner are set on descriptors, and the rename replaces whatever the name pointed to.
    Returns "installed", "updated" or "unchanged".
    """
    with _directory(root, relative.parent) as directory:
        name = relative.name
        current = _open_regular(name, directory)
        if current is not None:
            with os.fdopen(current, "rb") as f:
                if f.read() == data:
                    _set_mode_owner(f.fileno(), mode, owner, root / relative)
                    return "unchanged"
        existed = current is not None or _lexists(name, directory)
        _replace(data, name, directory, mode, owner, root / relative)
        return "updated" if existed else "installed"


def _open_regular(name: str, directory: int) -> int | None:
    """A descriptor on the regular, singly linked file `name`; None when missing or to be replaced."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.EISDIR):
            return None
        raise
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        return fd
    os.close(fd)
    return None


def _lexists(name: str, directory: int) -> bool:
    try:
        os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _replace(data: bytes, name: str, directory: int, mode: int, owner: Owner, shown: Path) -> None:
    temporary = _create_temporary(name, directory)
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_NOFOLLOW, dir_fd=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            _set_mode_owner(f.fileno(), mode, owner, shown)
            os.fsync(f.fileno())
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=directory)
        raise


def _create_temporary(name: str, directory: int) -> str:
    for _ in range(100):
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=directory
            )
        except FileExistsError:
            continue
        os.close(fd)
        return temporary
    raise InstallError(f"cannot create a temporary file beside {name}")


@contextlib.contextmanager
def _directory(root: Path, relative: Path) -> Iterator[int]:
    """A descriptor on root/relative, each component opened with O_NOFOLLOW below `root` (resolved)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth, part in enumerate(relative.parts, 1):
            child = _open_child(fd, part, root / Path(*relative.parts[:depth]))
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _open_child(parent: int, part: str, shown: Path) -> int:
    try:
        return os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InstallError(
                f"{shown} is a symbolic link or not a directory: install writes only into real directories"
            ) from exc
        raise


def _exists(root: Path, relative: Path) -> bool:
    try:
        with _directory(root, relative.parent) as directory:
            return _lexists(relative.name, directory)
    except FileNotFoundError:
        return False


def _ensure_dir(root: Path, relative: Path, mode: int, owner: Owner, create_only: bool = False) -> None:
    """Create root/relative (no link followed); an existing directory keeps its mode and owner when
    `create_only` (Wazuh's own)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth, part in enumerate(relative.parts, 1):
            created = False
            try:
                os.mkdir(part, 0o700, dir_fd=fd)
                created = True
            except FileExistsError:
                pass
            child = _open_child(fd, part, root / Path(*relative.parts[:depth]))
            os.close(fd)
            fd = child
            if created or (depth == len(relative.parts) and not create_only):
                _set_mode_owner(fd, mode, owner, root / Path(*relative.parts[:depth]))
    finally:
        os.close(fd)


def _set_mode_owner(fd: int, mode: int, owner: Owner, shown: Path) -> None:
    os.fchmod(fd, mode)
    if owner.uid != -1 or owner.gid != -1:
        try:
            os.fchown(fd, owner.uid, owner.gid)
        except PermissionError:
            log.warning("cannot give %s to uid %d gid %d: not root", shown, owner.uid, owner.gid)


def _write_manifest(root: Path, owners: Owners, outcome: Outcome) -> None:
    manifest = root / WODLE_DIR / MANIFEST
    before = set(manifest.read_text().splitlines()) if manifest.exists() else set()
    _ensure_dir(root, WODLE_DIR, 0o750, owners.wodle)
    lines = sorted(before | {str(p) for p in outcome.installed})
    copy_file(("\n".join(lines) + "\n").encode(), root, WODLE_DIR / MANIFEST, 0o640, owners.wodle)


# -- uninstall -------------------------------------------------------------------------------------


def uninstall(root: Path, purge: bool = False, force: bool = False) -> None:
    ossec_conf = root / OSSEC_CONF
    facts = read_ossec_conf(ossec_conf, lambda: _reader_python(root))
    if facts.unchecked:
        log.warning(
            '%s: if it runs %s, remove that <wodle name="command"> block and restart Wazuh',
            facts.unchecked,
            WODLE_DIR / LAUNCHER,
        )
    line = facts.module_line
    if line is not None and not force:
        raise ConfigError(
            f"{ossec_conf} line {line} still runs {WODLE_DIR / LAUNCHER}: remove that "
            '<wodle name="command"> block and restart Wazuh first (modulesd would run a launcher that is '
            "gone), or give --force"
        )
    wodle_dir = root / WODLE_DIR
    manifest = wodle_dir / MANIFEST
    listed = manifest.read_text().split() if manifest.exists() else []
    print(f"wazuh-ecr-scan: removing from {root}")
    ruleset_removed = False
    for relative in listed:
        removed = _remove(root, Path(relative))
        ruleset_removed |= removed and Path(relative).parts[:2] in {d.parts for d in RULESET_DIRS.values()}
    _remove(root, WODLE_DIR / LAUNCHER)
    _remove(root, WODLE_DIR / PYTHON_RECORD)
    shutil.rmtree(wodle_dir / PACKAGE, ignore_errors=True)
    if (root / VENV).is_dir() and not (root / VENV).is_symlink():
        shutil.rmtree(root / VENV)
        print(f"  removed   {VENV}/")
    _remove(root, WODLE_DIR / MANIFEST)
    if purge:
        for path in (*wodle_dir.glob("ecr_scan_state.db*"), root / CONFIG):
            _remove(root, path.relative_to(root))
    if wodle_dir.is_dir() and not any(wodle_dir.iterdir()):
        wodle_dir.rmdir()
    elif wodle_dir.is_dir():
        print(f"  kept      {WODLE_DIR}/ (state DB; --purge removes it)")
    if line is not None:
        print(f'{ossec_conf} still runs the module: remove its <wodle name="command"> block, restart Wazuh.')
    elif ruleset_removed:
        print("Restart Wazuh (wazuh-manager) so that analysisd unloads the rules and decoders.")


def _remove(root: Path, relative: Path) -> bool:
    """Unlink root/relative (a link itself, never what it points to) through a directory opened without
    following links; a directory on the way that is a link is left alone, with a warning."""
    try:
        with _directory(root, relative.parent) as directory:
            info = os.stat(relative.name, dir_fd=directory, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                return False
            os.unlink(relative.name, dir_fd=directory)
    except FileNotFoundError:
        return False
    except InstallError as exc:
        log.warning("%s not removed: %s", relative, exc)
        return False
    print(f"  removed   {relative}")
    return True


# -- what to tell the administrator ----------------------------------------------------------------


def _launcher_python(root: Path) -> tuple[Path, str] | None:
    """The Python the launcher will pick and why, in its own order: Wazuh's, the recorded one, python3 on
    PATH; None when none of them can run the module."""
    candidates = [(root / EMBEDDED_PYTHON, "Wazuh's embedded Python")]
    recorded = _recorded_python(root)
    if recorded is not None:
        candidates.append((recorded, f"named in {WODLE_DIR / PYTHON_RECORD}"))
    system = shutil.which("python3", path=SERVICE_PATH)
    if system:
        candidates.append((Path(system), "python3 from a service's PATH"))
    for path, what in candidates:
        if usable_python(path, quiet=True):
            return path, what
    return None


def _reader_python(root: Path) -> Path | None:
    chosen = _launcher_python(root)
    return chosen[0] if chosen else None


def _report_python(root: Path, chosen: tuple[Path, str] | None) -> None:
    if chosen is not None:
        print(f"Python: the launcher will use {chosen[0]} ({chosen[1]})")
        return
    log.warning(
        "no Python 3.10+ with %s that only root can change was found for the launcher: run install again "
        "without --no-venv (it makes %s), or install them for %s",
        " ".join(REQUIREMENTS),
        VENV,
        root / EMBEDDED_PYTHON,
    )


# -- the Python the launcher runs ------------------------------------------------------------------


VenvMaker = Callable[[Path, Path], None]


def _settle_python(root: Path, owners: Owners, outcome: Outcome, make_venv: VenvMaker | None) -> None:
    """Record in python.path a Python that can run the module and that only root can change: the one this
    install runs with, else the private venv (made here, with `make_venv`, when Wazuh's embedded Python
    cannot run the module either). The launcher tries Wazuh's embedded Python first, then this one."""
    record = WODLE_DIR / PYTHON_RECORD
    venv_python = root / VENV_PYTHON
    chosen: tuple[Path, str] | None = None
    for python, what in ((Path(sys.executable), "the Python this install ran with"), (venv_python, "venv")):
        if usable_python(python):
            chosen = (python, what)
            break
    if chosen is None and make_venv is not None and not usable_python(root / EMBEDDED_PYTHON, quiet=True):
        _make_private_venv(root, make_venv)
        outcome.lines.append(f"  {'created':<9} {VENV}/ (with {' '.join(REQUIREMENTS)})")
        chosen = (venv_python, "venv")
    if chosen is None:
        if _exists(root, record):
            with _directory(root, record.parent) as directory:
                os.unlink(record.name, dir_fd=directory)
            outcome.lines.append(f"  {'removed':<9} {record} (named a Python that cannot run the module)")
        return
    python, what = chosen
    status = copy_file(f"{python}\n".encode(), root, record, 0o640, owners.wodle)
    what = "the private venv" if what == "venv" else what
    outcome.record(status, record, f" ({python}: {what}, tried after Wazuh's embedded Python)")


def _make_private_venv(root: Path, make_venv: VenvMaker) -> None:
    base = _venv_base(root)
    print(f"  making {VENV}/ with {base}: pip install {' '.join(REQUIREMENTS)} ...", flush=True)
    make_venv(base, root / VENV)
    if not usable_python(root / VENV_PYTHON):
        raise InstallError(f"{root / VENV_PYTHON} cannot import boto3, lxml and dateutil after pip install")


def _venv_base(root: Path) -> Path:
    """The Python to make the venv with: 3.10+, and changeable by root only."""
    candidates = [Path(sys.executable), root / EMBEDDED_PYTHON]
    system = shutil.which("python3", path=SERVICE_PATH)
    if system:
        candidates.append(Path(system))
    for python in candidates:
        if usable_python(python, probe=VERSION_PROBE, quiet=True):
            return python
    raise InstallError(f"no Python 3.10+ that only root can change, to make {VENV} with: install python3")


def build_venv(base: Path, venv: Path, system_site_packages: bool = False) -> None:
    """`python -m venv` (a broken venv is rebuilt), then, unless the venv can already import REQUIREMENTS
    (`system_site_packages` reuses what `base` has), pip (ensurepip) and pip install REQUIREMENTS. pip
    reads its own configuration (PIP_INDEX_URL, /etc/pip.conf) for a mirror or a proxy."""
    command = [str(base), "-I", "-m", "venv", "--clear", "--without-pip"]
    if system_site_packages:
        command.append("--system-site-packages")
    _run([*command, str(venv)], "python -m venv")
    python = venv / "bin" / "python3"
    if not usable_python(python, quiet=True):
        # Debian and Ubuntu ship ensurepip in python3-venv; `venv --without-pip` above works without it.
        ensurepip = "python -m ensurepip (on Debian/Ubuntu: apt-get install python3-venv)"
        _run([str(python), "-I", "-m", "ensurepip", "--default-pip"], ensurepip)
        pip = [str(python), "-I", "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        _run([*pip, *REQUIREMENTS], "pip install")


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, umask=0o022, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-6:])
        raise InstallError(f"{what} failed (exit {result.returncode}): {tail}")


def usable_python(python: Path, probe: str = PROBE, quiet: bool = False) -> bool:
    """`python` exists, only root can change it (else a warning, unless `quiet`), and it runs `probe`
    isolated from the working directory and the environment (-I)."""
    if not python.exists():
        return False
    reason = untrusted_reason(python)
    if reason is not None:
        if not quiet:
            log.warning("%s not used: %s (the launcher runs it as root)", python, reason)
        return False
    try:
        result = subprocess.run([str(python), "-I", "-c", probe], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def untrusted_reason(path: Path, uid: int | None = None) -> str | None:
    """Why someone other than root (or `uid`, default this process's) could change what running `path`
    runs: `path`, or a directory above it along the path as written and through every symbolic link, is
    owned by another user, or writable by a group other than root's or by everyone (a sticky directory
    such as /tmp excepted: there only an entry's owner can replace it). None when nobody else can."""
    return _untrusted_walk(os.fspath(path), os.geteuid() if uid is None else uid, 0)


def _untrusted_walk(path: str, uid: int, links: int) -> str | None:
    if links > 40:
        return f"{path}: too many symbolic links"
    if not os.path.isabs(path):
        return f"{path} is not an absolute path"
    current = "/"
    reason = _entry_reason(current, os.lstat(current), uid)
    for part in Path(path).parts[1:]:
        if reason is not None:
            return reason
        if part == ".":
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        try:
            info = os.lstat(candidate)
        except OSError as exc:
            return f"{candidate}: {exc.strerror}"
        if stat.S_ISLNK(info.st_mode):
            reason = _untrusted_walk(os.path.join(current, os.readlink(candidate)), uid, links + 1)
            current = os.path.realpath(candidate)
        else:
            reason = _entry_reason(candidate, info, uid)
            current = candidate
    return reason


def _entry_reason(path: str, info: os.stat_result, uid: int) -> str | None:
    if info.st_uid not in (0, uid):
        return f"{path} is owned by uid {info.st_uid}"
    if info.st_mode & stat.S_IWGRP and info.st_gid != 0:
        return f"{path} is writable by group {info.st_gid}"
    if info.st_mode & stat.S_IWOTH and not (stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX):
        return f"{path} is writable by everyone"
    return None


def _recorded_python(root: Path) -> Path | None:
    try:
        line = (root / WODLE_DIR / PYTHON_RECORD).read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return Path(line) if line else None


# -- ossec.conf ------------------------------------------------------------------------------------


# How install, which must run without lxml, reads ossec.conf: a Python that runs the module (it has lxml)
# runs the package's own reader, isolated (-I: not the working directory), with only this package added.
READ_OSSEC_CONF = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from wazuh_ecr_scan.ossec_config import ossec_conf_report_json as r; print(r(sys.argv[2]))"
)
# ossec_config.RULESET_LINES as XML lines (a test keeps them equal): what <ruleset> needs.
RULESET_LINES = ("<decoder_dir>etc/decoders</decoder_dir>", "<rule_dir>etc/rules</rule_dir>")


@dataclass(frozen=True)
class OssecConfFacts:
    """The fields of ossec_config.OssecConfReport (same names), or why ossec.conf was not read."""

    stock_wodle_groups: list[tuple[int, str]] = field(default_factory=list)
    module_line: int | None = None
    missing_ruleset_lines: list[str] = field(default_factory=list)
    bad_xml: str | None = None
    unchecked: str | None = None  # why install could not read ossec.conf: nothing above is known


def read_ossec_conf(path: Path, reader_python: Callable[[], Path | None]) -> OssecConfFacts:
    """`path` read by ossec_config (lxml): in this process when it can import it, else in the Python
    `reader_python()` names (one that runs the module: it has lxml)."""
    try:
        ossec_config = importlib.import_module(f"{PACKAGE}.ossec_config")
    except ImportError:
        return _read_in_another_python(path, reader_python())
    try:
        return OssecConfFacts(**asdict(ossec_config.ossec_conf_report(str(path))))
    except ConfigError as exc:
        return OssecConfFacts(unchecked=f"{path} not checked: {exc}")


def _read_in_another_python(path: Path, python: Path | None) -> OssecConfFacts:
    if python is None:
        return OssecConfFacts(
            unchecked=f"{path} not checked: no Python with {' '.join(REQUIREMENTS)} to read it with "
            f"(install without --no-venv makes one in {VENV}/)"
        )
    with _this_package_alone() as directory:
        command = [str(python), "-I", "-B", "-c", READ_OSSEC_CONF, directory, str(path)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return OssecConfFacts(unchecked=f"{path} not checked: {python} could not read it: {exc}")
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        answer = None
    if result.returncode != 0 or not isinstance(answer, dict):
        tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
        said = f": {tail}" if tail else ""
        return OssecConfFacts(
            unchecked=f"{path} not checked: {python} could not read it (exit {result.returncode}){said}"
        )
    if "error" in answer:
        return OssecConfFacts(unchecked=f"{path} not checked: {answer['error']}")
    report = answer["report"]
    report["stock_wodle_groups"] = [(line, group) for line, group in report["stock_wodle_groups"]]
    return OssecConfFacts(**report)


@contextlib.contextmanager
def _this_package_alone() -> Iterator[str]:
    """A new directory holding only a link to this package: what another Python imports it from."""
    with tempfile.TemporaryDirectory(prefix="wazuh-ecr-scan-") as directory:
        os.symlink(Path(__file__).resolve().parent, Path(directory, PACKAGE))
        yield directory


def _report_ossec_conf(
    source: ProjectFiles, root: Path, facts: OssecConfFacts, wodle: bool, ruleset: bool, ruleset_changed: bool
) -> None:
    ossec_conf = root / OSSEC_CONF
    if facts.unchecked:
        log.warning("%s: check it against what follows", facts.unchecked)
    if facts.bad_xml:
        log.warning("%s (what follows is what install could read of it)", facts.bad_xml)
    for line, group in facts.stock_wodle_groups:
        log.warning(
            "%s line %d: Wazuh's aws-s3 wodle reads %s too and forwards it raw: move that "
            '<wodle name="aws-s3"> block to %s',
            ossec_conf,
            line,
            group,
            CONFIG,
        )
    restart = "Restart Wazuh (wazuh-manager) to load the new rules and decoders." if ruleset_changed else ""
    if wodle and facts.module_line is None:
        unless = " unless it has it already" if facts.unchecked else ""
        print(f"\nAdd this to {ossec_conf}{unless}, then restart Wazuh ({_service(root)}):\n")
        print(command_block(source, root))
    elif wodle:
        print(f"{ossec_conf} already runs the module: nothing to add; the next pass uses this version.")
    missing = RULESET_LINES if facts.unchecked else facts.missing_ruleset_lines
    if ruleset and missing:
        if facts.unchecked:
            print("\nYour <ruleset> needs these lines; add the ones it lacks (each once):")
        else:
            print("\nYour <ruleset> lacks these lines; add them too:")
        for line in missing:
            print(f"    {line}")
        restart = "Restart Wazuh (wazuh-manager) once <ruleset> loads them."
    if restart:
        print(restart)
    elif ruleset:
        print("Rules and decoders unchanged: no restart needed for them.")


def _service(root: Path) -> str:
    return "wazuh-agent" if _is_agent(root) else "wazuh-manager"


def command_block(source: ProjectFiles, root: Path) -> str:
    """The `<wodle name="command">` block of ossec.conf.example, with this installation's path.

    Cut as text, not with lxml: it is printed on a host with no lxml at all (install runs before the
    dependencies exist), and as written in the example, its indentation and comments included."""
    match = re.search(r'[ \t]*<wodle name="command">.*?</wodle>', source.example.read_text(), re.DOTALL)
    if match is None:
        raise ConfigError(f'{source.example}: no <wodle name="command"> block')
    return match[0].replace(DEFAULT_PATH_IN_EXAMPLE, str(root))


# -- environment -----------------------------------------------------------------------------------


def wazuh_owners() -> Owners:
    group = _first_existing(grp.getgrnam, ("wazuh", "ossec"))
    user = _first_existing(pwd.getpwnam, ("wazuh", "ossec"))
    gid = group.gr_gid if group else -1
    root_uid = 0 if os.geteuid() == 0 else -1
    return Owners(
        wodle=Owner(root_uid if gid != -1 else -1, gid),
        ruleset=Owner(user.pw_uid if user and gid != -1 else -1, gid),
        group_name=group.gr_name if group else None,
    )


def _first_existing(lookup: Callable[[str], T], names: Iterable[str]) -> T | None:
    for name in names:
        try:
            return lookup(name)
        except KeyError:
            continue
    return None


def _wazuh_tree(root: Path) -> Path:
    if not (root / "etc").is_dir() or not (root / "wodles").is_dir():
        raise ConfigError(f"no Wazuh installation at {root} (no etc/ and wodles/): give --wazuh_path")
    return root.resolve()


def _kind(root: Path) -> str:
    return "agent" if _is_agent(root) else "manager"


def _is_agent(root: Path) -> bool:
    return (root / "bin" / "wazuh-agentd").exists() and not (root / "bin" / "wazuh-analysisd").exists()


def _ruleset_wanted(args: argparse.Namespace, root: Path) -> bool:
    if args.no_ruleset:
        return False
    if _is_agent(root) and not args.ruleset_only:
        print("agent: rules and decoders belong on the manager (install there with --ruleset-only)")
        return False
    return True


def _project_root() -> Path:
    """The checkout this module runs from, else the copy `pip install` laid under <data dir>/share: the
    package's own record says where (~/.local for --user, /usr/local for Debian's system pip)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "wodle" / LAUNCHER).exists():
        return checkout
    try:
        for file in distribution("wazuh-ecr-scan").files or ():
            if file.as_posix().endswith(f"share/wazuh-ecr-scan/wodle/{LAUNCHER}"):
                return Path(str(file.locate())).resolve().parents[1]
    except PackageNotFoundError:
        pass
    return Path(sys.prefix) / "share" / "wazuh-ecr-scan"


def _check_source(source: ProjectFiles, wodle: bool, ruleset: bool) -> None:
    needed = [source.launcher, source.config_template, source.example] if wodle else []
    needed += [source.root / kind for kind in RULESET_DIRS] if ruleset else []
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise ConfigError(
            f"install needs the project tree ({', '.join(missing)} not found): run it from a checkout "
            "or an unpacked sdist, or give --source DIR"
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
