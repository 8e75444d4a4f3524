"""`wazuh-ecr-scan install|uninstall --wazuh_path DIR`: put the module into a Wazuh installation.

Layout and modes follow Wazuh's own installer (src/init/inst-functions.sh): wodle scripts root:wazuh 0750
under wodles/ (as wodles/aws/aws-s3 and its modules), user rules and decoders wazuh:wazuh 0660 in
etc/rules and etc/decoders (as local_rules.xml). Without a `wazuh` group (nor Wazuh 3.x's `ossec`),
ownership is left as it is. Running it again changes nothing that is already in place.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TypeVar

from wazuh_ecr_scan import __version__
from wazuh_ecr_scan.config import DEFAULT_WAZUH_PATH, StrictParser
from wazuh_ecr_scan.errors import EXIT_BAD_CONFIG, EXIT_INTERNAL, EXIT_OK, ConfigError
from wazuh_ecr_scan.logs import log, setup_logging

WODLE_DIR = Path("wodles", "ecr-scan")
LAUNCHER = "ecr-scan"
PACKAGE = "wazuh_ecr_scan"
CONFIG = Path("etc", "ecr-scan.conf")
MANIFEST = "installed-files.txt"
RULESET_DIRS = {"rules": Path("etc", "rules"), "decoders": Path("etc", "decoders")}
EMBEDDED_PYTHON = Path("framework", "python", "bin", "python3")
# The interpreter `install` ran with (a venv, ~/.local): the launcher tries it after Wazuh's embedded
# Python, since modulesd's PATH would not lead to it.
PYTHON_RECORD = "python.path"
# PATH of a service started by systemd: what the launcher sees under modulesd, not the installer's PATH.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROBE = "import sys; assert sys.version_info >= (3, 10); import boto3, lxml, dateutil"
DEPENDENCIES = "boto3 lxml python-dateutil"
DEFAULT_PATH_IN_EXAMPLE = "/var/ossec"
T = TypeVar("T")


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
class Source:
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

    def record(self, status: str, relative: Path, detail: str = "") -> None:
        self.lines.append(f"  {status:<9} {relative}{detail}")
        self.installed.append(relative)


def main(argv: list[str]) -> int:
    setup_logging(0)
    try:
        args = _parser().parse_args(argv)
        root = _wazuh_tree(Path(args.wazuh_path))
        if args.command == "uninstall":
            uninstall(root, purge=args.purge)
            return EXIT_OK
        source = Source(Path(args.source).resolve() if args.source else _project_root())
        install(
            source, root, wazuh_owners(), ruleset=_ruleset_wanted(args, root), wodle=not args.ruleset_only
        )
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_BAD_CONFIG
    except OSError as exc:
        log.error("%s: %s (run it as root?)", exc.filename or "install", exc.strerror)
        return EXIT_INTERNAL
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    p = StrictParser(
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
    remove = sub.add_parser("uninstall", help="remove what install copied (state and config kept)")
    remove.add_argument("--wazuh_path", default=DEFAULT_WAZUH_PATH)
    remove.add_argument("--purge", action="store_true", help="also remove the state DB and etc/ecr-scan.conf")
    return p


# -- install ---------------------------------------------------------------------------------------


def install(source: Source, root: Path, owners: Owners, ruleset: bool = True, wodle: bool = True) -> Outcome:
    _check_source(source, wodle, ruleset)
    outcome = Outcome()
    print(f"wazuh-ecr-scan {__version__}: installing into {root} ({_kind(root)})")
    if wodle:
        _install_wodle(source, root, owners, outcome)
    if ruleset:
        _install_ruleset(source, root, owners, outcome)
    _write_manifest(root, owners, outcome)  # --ruleset-only too: uninstall must find the rules
    print("\n".join(outcome.lines))
    if owners.group_name is None:
        print("  note: no 'wazuh' (or 'ossec') group on this host: ownership left as it is; modes set")
    if wodle:
        _report_python(root)
        _report_ossec_conf(source, root)
    return outcome


def _install_wodle(source: Source, root: Path, owners: Owners, outcome: Outcome) -> None:
    wodle_dir = root / WODLE_DIR
    _ensure_dir(wodle_dir, 0o750, owners.wodle)
    launcher = WODLE_DIR / LAUNCHER
    status = copy_file(source.launcher.read_bytes(), root / launcher, 0o750, owners.wodle)
    outcome.record(status, launcher, " (0750)")
    _install_package(source.package, root, owners, outcome)
    record = WODLE_DIR / PYTHON_RECORD
    status = copy_file(f"{sys.executable}\n".encode(), root / record, 0o640, owners.wodle)
    outcome.record(status, record, f" ({sys.executable}, tried after Wazuh's embedded Python)")
    if not (root / CONFIG).exists():
        copy_file(source.config_template.read_bytes(), root / CONFIG, 0o640, owners.wodle)
        outcome.lines.append(f"  {'created':<9} {CONFIG} (0640; edit it: regions, groups, credentials)")
    else:
        outcome.lines.append(f"  {'kept':<9} {CONFIG} (yours: never overwritten)")


def _install_package(package: Path, root: Path, owners: Owners, outcome: Outcome) -> None:
    target = root / WODLE_DIR / PACKAGE
    _ensure_dir(target, 0o750, owners.wodle)
    wanted = {p.name: p for p in sorted(package.glob("*.py"))}
    counts: dict[str, int] = {}
    for name, path in wanted.items():
        status = copy_file(path.read_bytes(), target / name, 0o750, owners.wodle)
        counts[status] = counts.get(status, 0) + 1
        outcome.installed.append(WODLE_DIR / PACKAGE / name)
    for stale in sorted(target.glob("*.py")):
        if stale.name not in wanted:  # a module that an older version had
            stale.unlink()
            counts["removed"] = counts.get("removed", 0) + 1
    shutil.rmtree(target / "__pycache__", ignore_errors=True)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    outcome.lines.append(f"  {'module':<9} {WODLE_DIR / PACKAGE}/ ({len(wanted)} files: {summary})")


def _install_ruleset(source: Source, root: Path, owners: Owners, outcome: Outcome) -> None:
    for kind, directory in RULESET_DIRS.items():
        files = source.ruleset(kind)
        if not files:
            outcome.lines.append(f"  {'none':<9} {kind}/*.xml in {source.root}")
            continue
        _ensure_dir(root / directory, 0o770, owners.ruleset, create_only=True)
        for path in files:
            relative = directory / path.name
            status = copy_file(path.read_bytes(), root / relative, 0o660, owners.ruleset)
            outcome.record(status, relative, " (0660)")


def copy_file(data: bytes, target: Path, mode: int, owner: Owner) -> str:
    """Write `target` atomically if its content differs; set mode and owner either way.

    Returns "installed", "updated" or "unchanged".
    """
    existed = target.exists()
    if existed and target.read_bytes() == data:
        status = "unchanged"
    else:
        temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        temporary.write_bytes(data)
        _set_mode_owner(temporary, mode, owner)
        os.replace(temporary, target)
        status = "updated" if existed else "installed"
    _set_mode_owner(target, mode, owner)
    return status


def _ensure_dir(path: Path, mode: int, owner: Owner, create_only: bool = False) -> None:
    """Create `path`; an existing directory keeps its mode and owner when `create_only` (Wazuh's own)."""
    if path.is_dir() and create_only:
        return
    path.mkdir(parents=True, exist_ok=True)
    _set_mode_owner(path, mode, owner)


def _set_mode_owner(path: Path, mode: int, owner: Owner) -> None:
    os.chmod(path, mode)
    if owner.uid != -1 or owner.gid != -1:
        try:
            os.chown(path, owner.uid, owner.gid)
        except PermissionError:
            log.warning("cannot give %s to uid %d gid %d: not root", path, owner.uid, owner.gid)


def _write_manifest(root: Path, owners: Owners, outcome: Outcome) -> None:
    manifest = root / WODLE_DIR / MANIFEST
    before = set(manifest.read_text().splitlines()) if manifest.exists() else set()
    _ensure_dir(root / WODLE_DIR, 0o750, owners.wodle)
    lines = sorted(before | {str(p) for p in outcome.installed})
    copy_file(("\n".join(lines) + "\n").encode(), root / WODLE_DIR / MANIFEST, 0o640, owners.wodle)


# -- uninstall -------------------------------------------------------------------------------------


def uninstall(root: Path, purge: bool = False) -> None:
    wodle_dir = root / WODLE_DIR
    manifest = wodle_dir / MANIFEST
    listed = manifest.read_text().split() if manifest.exists() else []
    print(f"wazuh-ecr-scan: removing from {root}")
    for relative in listed:
        _remove(root / relative, relative)
    _remove(wodle_dir / LAUNCHER, WODLE_DIR / LAUNCHER)
    _remove(wodle_dir / PYTHON_RECORD, WODLE_DIR / PYTHON_RECORD)
    shutil.rmtree(wodle_dir / PACKAGE, ignore_errors=True)
    _remove(manifest, WODLE_DIR / MANIFEST)
    if purge:
        for path in (*wodle_dir.glob("ecr_scan_state.db*"), root / CONFIG):
            _remove(path, path.relative_to(root))
    if wodle_dir.is_dir() and not any(wodle_dir.iterdir()):
        wodle_dir.rmdir()
    elif wodle_dir.is_dir():
        print(f"  kept      {WODLE_DIR}/ (state DB; --purge removes it)")
    print('Remove the <wodle name="command"> block running ecr-scan from etc/ossec.conf and restart Wazuh.')


def _remove(path: Path, relative: Path | str) -> None:
    if path.is_file() or path.is_symlink():
        path.unlink()
        print(f"  removed   {relative}")


# -- what to tell the administrator ----------------------------------------------------------------


def _report_python(root: Path) -> None:
    candidates = [
        (root / EMBEDDED_PYTHON, "Wazuh's embedded Python"),
        (Path(sys.executable), f"the Python this install ran with, kept in {WODLE_DIR / PYTHON_RECORD}"),
    ]
    system = shutil.which("python3", path=SERVICE_PATH)
    if system:
        candidates.append((Path(system), "python3 from a service's PATH"))
    for path, what in candidates:
        if path.exists() and _can_run_module(path):
            print(f"Python: the launcher will use {path} ({what})")
            return
    embedded = root / EMBEDDED_PYTHON
    pip = f"{embedded.parent / 'pip3'} install {DEPENDENCIES}" if embedded.exists() else None
    log.warning(
        "no Python 3.10+ with %s found for the launcher: run %s",
        DEPENDENCIES,
        pip or f"python3 -m pip install {DEPENDENCIES}",
    )


def _can_run_module(python: Path) -> bool:
    try:
        return subprocess.run([str(python), "-c", PROBE], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _report_ossec_conf(source: Source, root: Path) -> None:
    ossec_conf = root / "etc" / "ossec.conf"
    text = ossec_conf.read_text(errors="replace") if ossec_conf.exists() else ""
    _warn_stock_ecr_blocks(ossec_conf, text)
    if re.search(r"<command>[^<]*wodles/ecr-scan/ecr-scan", text):
        print(f"{ossec_conf} already runs the module: nothing to add. Restart Wazuh to load new rules.")
        return
    print(f"\nAdd this to {ossec_conf}, then restart Wazuh (wazuh-manager or wazuh-agent):\n")
    print(command_block(source, root))
    if text and not all(f"<{tag}>{path}</{tag}>" in text for tag, path in _RULESET_LINES):
        print("\nYour <ruleset> lacks these lines; add them too:")
        for tag, path in _RULESET_LINES:
            print(f"    <{tag}>{path}</{tag}>")


_RULESET_LINES = (("decoder_dir", "etc/decoders"), ("rule_dir", "etc/rules"))


def command_block(source: Source, root: Path) -> str:
    """The `<wodle name="command">` block of ossec.conf.example, with this installation's path."""
    match = re.search(r'[ \t]*<wodle name="command">.*?</wodle>', source.example.read_text(), re.DOTALL)
    if match is None:
        raise ConfigError(f'{source.example}: no <wodle name="command"> block')
    return match[0].replace(DEFAULT_PATH_IN_EXAMPLE, str(root))


def _warn_stock_ecr_blocks(ossec_conf: Path, text: str) -> None:
    """An aws-s3 block reading ECR groups in ossec.conf makes Wazuh forward the same findings raw."""
    if "aws-s3" not in text:
        return
    from wazuh_ecr_scan import ossec_config

    try:
        wodles = list(ossec_config.aws_s3_wodles(ossec_config.parse_file(str(ossec_conf), recover=True)))
    except ConfigError:
        return
    for wodle in wodles:
        for group in wodle.iter("aws_log_groups"):
            if "/aws/ecr/" in (group.text or ""):
                log.warning(
                    "%s line %d: Wazuh's aws-s3 wodle reads %s too and forwards it raw: move that "
                    '<wodle name="aws-s3"> block to %s',
                    ossec_conf,
                    group.sourceline,
                    group.text.strip(),
                    CONFIG,
                )


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


def _check_source(source: Source, wodle: bool, ruleset: bool) -> None:
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
