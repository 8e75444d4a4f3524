"""`wazuh-ecr-scan install` into a fake Wazuh tree: files, modes, ownership, idempotence, the ossec.conf
block it prints, the launcher's choice of Python, and `uninstall`."""

from __future__ import annotations

import configparser
import functools
import grp
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, cli_env
from lxml import etree
from wazuh_ecr_scan import install as installer
from wazuh_ecr_scan import ossec_config
from wazuh_ecr_scan.cli import main
from wazuh_ecr_scan.errors import EXIT_BAD_CONFIG
from wazuh_ecr_scan.install import Owner, Owners, ProjectFiles

# install and uninstall start Python (venv, pip, -I probes) and the launcher as processes: integration tier
pytestmark = pytest.mark.integration

RECORDING = str(ROOT / "tests" / "recordings" / "multi-repo.jsonl")
BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1))"  # how the launcher starts Python (isolated)
NO_OWNERS = Owners(Owner(), Owner(), None)
PYTHON = sys.executable  # the real one, also where tests set sys.executable to another
# Ownership by another user is made with os.chown: root only (install and the launcher run as root).
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another uid with chown")



def read_events(stdout: str) -> int:
    """Events made from the recording's log events (each has its event id); the finding lifecycle's
    scan_changes events come on top."""
    return sum('"event_id":' in line for line in stdout.splitlines())

@pytest.fixture
def wazuh(tmp_path) -> Path:
    """The parts of /var/ossec the installer looks at."""
    root = tmp_path / "ossec"
    for directory in ("etc/rules", "etc/decoders", "wodles", "logs", "bin"):
        (root / directory).mkdir(parents=True)
    (root / "etc" / "ossec.conf").write_text(
        "<ossec_config>\n  <ruleset>\n    <decoder_dir>etc/decoders</decoder_dir>\n"
        "    <rule_dir>etc/rules</rule_dir>\n  </ruleset>\n</ossec_config>\n"
    )
    return root


@pytest.fixture
def source(tmp_path) -> ProjectFiles:
    """The project tree: its launcher, template and example, and its rules and decoders (a made-up one
    of each when the project has none yet)."""
    root = tmp_path / "src"
    (root / "wodle").mkdir(parents=True)
    for relative in ("wodle/ecr-scan", "wodle/ecr-scan.conf", "ossec.conf.example"):
        shutil.copy2(ROOT / relative, root / relative)
    for kind in ("rules", "decoders"):
        (root / kind).mkdir()
        for path in (ROOT / kind).glob("*.xml"):
            shutil.copy2(path, root / kind / path.name)
        if not any((root / kind).glob("*.xml")):
            (root / kind / f"9999-test_{kind}.xml").write_text(f"<!-- {kind} -->\n")
    return ProjectFiles(root)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_modes_and_the_block_to_add(wazuh, source, capsys):
    installer.install(source, wazuh, NO_OWNERS)
    out = capsys.readouterr().out
    wodle = wazuh / "wodles" / "ecr-scan"
    assert mode(wodle) == 0o750 and mode(wodle / "ecr-scan") == 0o750
    assert mode(wodle / "wazuh_ecr_scan") == 0o750
    package = sorted(p.name for p in (wodle / "wazuh_ecr_scan").glob("*.py"))
    assert package == sorted(p.name for p in source.package.glob("*.py"))
    assert all(mode(p) == 0o750 for p in (wodle / "wazuh_ecr_scan").glob("*.py"))
    for kind in ("rules", "decoders"):
        for path in source.ruleset(kind):
            target = wazuh / "etc" / kind / path.name
            assert target.read_bytes() == path.read_bytes() and mode(target) == 0o660
    assert mode(wazuh / "etc" / "ecr-scan.conf") == 0o640
    assert "no 'wazuh' (or 'ossec') group" in out
    assert "then restart Wazuh (wazuh-manager):" in out
    block = etree.fromstring(re.search(r'<wodle name="command">.*?</wodle>', out, re.DOTALL)[0])
    command = block.findtext("command").split()
    assert command[0] == str(wodle / "ecr-scan") and command[2] == str(wazuh / "etc" / "ecr-scan.conf")
    assert "--run-once" in command and command[-1] == str(wazuh / "logs" / "ossec.log")
    assert "lacks these lines" not in out  # the default <ruleset> already loads etc/rules and etc/decoders


def test_second_run_changes_nothing_and_upgrades_replace_what_changed(wazuh, source, capsys):
    installer.install(source, wazuh, NO_OWNERS)
    capsys.readouterr()
    files = [p for p in wazuh.rglob("*") if p.is_file()]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns, mode(p)) for p in files}
    (wazuh / "etc" / "ecr-scan.conf").write_text("<!-- the administrator's own -->\n")
    before[wazuh / "etc" / "ecr-scan.conf"] = None

    installer.install(source, wazuh, NO_OWNERS)
    out = capsys.readouterr().out
    report = out.split("\nPython:")[0].splitlines()[1:]
    statuses = [line.split()[0] for line in report if "/" in line]
    assert set(statuses) <= {"unchanged", "module", "kept"}, out
    assert "files: " in out and "installed" not in out.split("files: ")[1].split(")")[0]
    for path, seen in before.items():
        if seen is not None:
            assert (path.read_bytes(), path.stat().st_mtime_ns, mode(path)) == seen, path
    assert (wazuh / "etc" / "ecr-scan.conf").read_text() == "<!-- the administrator's own -->\n"

    rule = source.ruleset("rules")[0]
    rule.write_text(rule.read_text() + "\n<!-- v2 -->\n")
    stale = wazuh / "wodles" / "ecr-scan" / "wazuh_ecr_scan" / "gone_in_v2.py"
    stale.write_text("")
    os.chmod(wazuh / "wodles" / "ecr-scan" / "ecr-scan", 0o777)
    installer.install(source, wazuh, NO_OWNERS)
    out = capsys.readouterr().out
    assert f"updated   etc/rules/{rule.name}" in out and "1 removed" in out
    assert not stale.exists() and mode(wazuh / "wodles" / "ecr-scan" / "ecr-scan") == 0o750


def test_ownership_is_given_when_the_group_exists(wazuh, source, monkeypatch, capsys):
    me = grp.getgrgid(os.getgid())
    lookups = []

    def getgrnam(name: str):
        lookups.append(name)
        if name == "wazuh":
            return me
        raise KeyError(name)

    monkeypatch.setattr(installer.grp, "getgrnam", getgrnam)
    owners = installer.wazuh_owners()
    assert lookups == ["wazuh"] and owners.group_name == me.gr_name
    assert owners.wodle == Owner(0 if os.geteuid() == 0 else -1, me.gr_gid)
    installer.install(source, wazuh, owners)
    assert "no 'wazuh'" not in capsys.readouterr().out
    for path in (wazuh / "wodles" / "ecr-scan" / "ecr-scan", *(wazuh / "etc" / "rules").glob("*.xml")):
        assert path.stat().st_gid == me.gr_gid


def test_without_wazuh_or_ossec_group_ownership_is_left_alone(monkeypatch):
    monkeypatch.setattr(installer.grp, "getgrnam", lambda name: (_ for _ in ()).throw(KeyError(name)))
    assert installer.wazuh_owners() == Owners(Owner(), Owner(), None)


def test_an_existing_configuration_and_a_stock_ecr_block_are_reported(wazuh, source, capsys, caplog):
    (wazuh / "etc" / "ossec.conf").write_text(
        '<ossec_config>\n  <wodle name="aws-s3">\n    <service type="cloudwatchlogs">\n'
        "      <aws_log_groups>/aws/ecr/image-scan-findings/web</aws_log_groups>\n"
        "    </service>\n  </wodle>\n"
        '  <wodle name="command">\n    <tag>ecr-scan</tag>\n'
        f"    <command>{wazuh}/wodles/ecr-scan/ecr-scan --config x --run-once</command>\n  </wodle>\n"
        "</ossec_config>\n"
    )
    installer.install(source, wazuh, NO_OWNERS)
    assert "already runs the module: nothing to add" in capsys.readouterr().out
    assert "ossec.conf line 4: Wazuh's aws-s3 wodle reads /aws/ecr/image-scan-findings/web" in caplog.text


def test_on_an_agent_the_ruleset_is_left_to_the_manager(wazuh, source, capsys):
    (wazuh / "bin" / "wazuh-agentd").write_text("")
    assert main(["install", "--wazuh_path", str(wazuh), "--source", str(source.root), "--no-venv"]) == 0
    assert "rules and decoders belong on the manager" in capsys.readouterr().out
    assert not list((wazuh / "etc" / "rules").glob("*.xml"))
    assert (wazuh / "wodles" / "ecr-scan" / "ecr-scan").exists()


def test_bad_trees_are_exit_2(wazuh, tmp_path, capsys):
    assert main(["install", "--wazuh_path", str(tmp_path / "nowhere")]) == EXIT_BAD_CONFIG
    assert "no Wazuh installation at" in capsys.readouterr().err
    assert main(["install", "--wazuh_path", str(wazuh), "--source", str(tmp_path)]) == EXIT_BAD_CONFIG
    assert "install needs the project tree" in capsys.readouterr().err


def fake_python(path: Path, marker: Path, works: bool = True) -> None:
    """A python3 that notes each call in `marker`, then is the real one (or fails every probe)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    real = f'exec "{PYTHON}" "$@"' if works else "exit 1"
    path.write_text(f'#!/bin/sh\necho "$@" >> "{marker}"\n{real}\n')
    path.chmod(0o755)


def run_launcher(wazuh: Path, *args: str, path: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in cli_env().items() if k not in ("PYTHONPATH", "WAZUH_PATH")}
    env["PATH"] = path
    launcher = str(wazuh / "wodles" / "ecr-scan" / "ecr-scan")
    return subprocess.run([launcher, *args], capture_output=True, text=True, env=env, cwd="/", timeout=120)


def test_the_launcher_prefers_wazuh_python_then_python3(wazuh, source, tmp_path, capsys):
    installer.install(source, wazuh, NO_OWNERS)
    embedded, system = tmp_path / "embedded.log", tmp_path / "system.log"
    fake_python(wazuh / "framework" / "python" / "bin" / "python3", embedded)
    fake_python(tmp_path / "bin" / "python3", system)
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"

    result = run_launcher(wazuh, "--run-once", "--output", "stdout", "--replay", RECORDING, path=path)
    assert result.returncode == 0, result.stderr
    assert read_events(result.stdout) == 24  # the installed copy ran (no PYTHONPATH given)
    assert f"-I -c {BOOT}" in embedded.read_text() and not system.exists()
    assert f"--wazuh_path {wazuh} --run-once" in embedded.read_text()

    fake_python(wazuh / "framework" / "python" / "bin" / "python3", embedded, works=False)
    recorded = tmp_path / "venv" / "bin" / "python3"  # the Python `install` ran with (a venv)
    fake_python(recorded, tmp_path / "recorded.log")
    (wazuh / "wodles" / "ecr-scan" / "python.path").write_text(f"{recorded}\n")
    result = run_launcher(wazuh, "--version", path=path)
    assert result.returncode == 0 and result.stdout.startswith("wazuh-ecr-scan ")
    assert f"-I -c {BOOT}" in (tmp_path / "recorded.log").read_text() and not system.exists()

    (wazuh / "wodles" / "ecr-scan" / "python.path").unlink()
    result = run_launcher(wazuh, "--version", path=path)
    assert result.returncode == 0 and result.stdout.startswith("wazuh-ecr-scan ")
    assert f"-I -c {BOOT}" in system.read_text()


def test_install_records_its_own_python_for_the_launcher(wazuh, source, capsys):
    installer.install(source, wazuh, NO_OWNERS)
    record = wazuh / "wodles" / "ecr-scan" / "python.path"
    assert record.read_text() == f"{sys.executable}\n" and mode(record) == 0o640
    assert f"Python: the launcher will use {sys.executable}" in capsys.readouterr().out
    assert main(["uninstall", "--wazuh_path", str(wazuh)]) == 0
    assert not record.exists()


def test_the_launcher_without_a_usable_python_says_so_in_ossec_log(wazuh, source, tmp_path):
    installer.install(source, wazuh, NO_OWNERS)
    (wazuh / "wodles" / "ecr-scan" / "python.path").unlink()  # installed with a Python since removed
    (wazuh / "logs" / "ossec.log").write_text("")
    fake_python(tmp_path / "bin" / "python3", tmp_path / "calls.log", works=False)
    result = run_launcher(wazuh, "--run-once", path=f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert result.returncode == 1
    line = (wazuh / "logs" / "ossec.log").read_text().strip()
    assert line == result.stderr.strip()
    assert "wazuh-ecr-scan: ERROR: no Python 3.10+ with boto3, lxml and python-dateutil" in line
    assert f"run '{wazuh}/wodles/ecr-scan/ecr-scan install' again as root" in line


def test_uninstall_keeps_state_and_configuration_unless_purged(wazuh, source, capsys):
    installer.install(source, wazuh, NO_OWNERS)
    state = wazuh / "wodles" / "ecr-scan" / "ecr_scan_state.db"
    state.write_bytes(b"")
    assert main(["uninstall", "--wazuh_path", str(wazuh)]) == 0
    assert not (wazuh / "wodles" / "ecr-scan" / "ecr-scan").exists()
    assert not (wazuh / "wodles" / "ecr-scan" / "wazuh_ecr_scan").exists()
    assert not list((wazuh / "etc" / "rules").glob("*.xml")) and not list(
        (wazuh / "etc" / "decoders").glob("*")
    )
    assert state.exists() and (wazuh / "etc" / "ecr-scan.conf").exists()
    assert (wazuh / "etc" / "ossec.conf").exists()
    assert main(["uninstall", "--wazuh_path", str(wazuh), "--purge"]) == 0
    assert not (wazuh / "wodles" / "ecr-scan").exists() and not (wazuh / "etc" / "ecr-scan.conf").exists()
    assert "Restart Wazuh (wazuh-manager) so that analysisd unloads the rules" in capsys.readouterr().out


def test_install_through_the_command_line_twice(wazuh, source):
    command = [sys.executable, "-m", "wazuh_ecr_scan", "install", "--wazuh_path", str(wazuh)]
    command += ["--source", str(source.root), "--no-venv"]
    first = subprocess.run(command, capture_output=True, text=True, env=cli_env(), timeout=120)
    second = subprocess.run(command, capture_output=True, text=True, env=cli_env(), timeout=120)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "installed wodles/ecr-scan/ecr-scan" in first.stdout
    assert "unchanged wodles/ecr-scan/ecr-scan" in second.stdout


def test_uninstall_removes_a_ruleset_installed_alone(wazuh, source, capsys):
    """`install --ruleset-only` (the manager of agents) is undone by uninstall too."""
    installer.install(source, wazuh, NO_OWNERS, wodle=False)
    assert list((wazuh / "etc" / "rules").glob("*ecr_scan*"))
    assert main(["uninstall", "--wazuh_path", str(wazuh)]) == 0
    assert not list(wazuh.rglob("*ecr_scan_rules*")) and not list(wazuh.rglob("*ecr_scan_decoders*"))


def test_a_later_install_without_the_ruleset_keeps_it_on_the_uninstall_list(wazuh, source, capsys):
    installer.install(source, wazuh, NO_OWNERS)
    installer.install(source, wazuh, NO_OWNERS, ruleset=False)
    assert main(["uninstall", "--wazuh_path", str(wazuh)]) == 0
    assert not list(wazuh.rglob("*ecr_scan_rules*"))


def test_the_installed_launcher_uninstalls_from_its_own_tree(wazuh, source, tmp_path):
    installer.install(source, wazuh, NO_OWNERS)
    env = {k: v for k, v in cli_env().items() if k != "WAZUH_PATH"}
    env["WAZUH_ECR_SCAN_PYTHON"] = sys.executable
    launcher = wazuh / "wodles" / "ecr-scan" / "ecr-scan"
    result = subprocess.run(
        ["sh", str(launcher), "uninstall"], env=env, capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert not launcher.exists() and not list(wazuh.rglob("*ecr_scan_rules*"))


def test_an_installed_package_finds_its_shared_files_where_pip_put_them(tmp_path, monkeypatch):
    """pip --user puts data files under ~/.local/share, Debian's system pip under /usr/local/share: not
    under sys.prefix. The package's own RECORD says where."""
    from importlib.metadata import PackagePath
    from types import SimpleNamespace

    site = tmp_path / "userbase" / "lib" / "python3" / "site-packages"
    shared = tmp_path / "userbase" / "share" / "wazuh-ecr-scan"
    (shared / "wodle").mkdir(parents=True)
    (shared / "wodle" / "ecr-scan").write_text("#!/bin/sh\n")
    recorded = PackagePath("../../../share/wazuh-ecr-scan/wodle/ecr-scan")  # as RECORD lists it
    recorded.dist = SimpleNamespace(locate_file=lambda path: site / path)
    monkeypatch.setattr(installer, "distribution", lambda name: SimpleNamespace(files=[recorded]))
    monkeypatch.setattr(installer, "__file__", str(site / "wazuh_ecr_scan" / "install.py"))
    assert installer._project_root() == shared.resolve()


# -- root runs the launcher and install: nothing from the working directory, no interpreter others own --


def plant(directory: Path, marker: Path) -> None:
    """What a local user could leave in a world-writable directory where root runs the launcher."""
    code = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    (directory / "wazuh_ecr_scan").mkdir(parents=True)
    (directory / "wazuh_ecr_scan" / "__init__.py").write_text(code)
    (directory / "wazuh_ecr_scan" / "__main__.py").write_text(code)
    for module in ("lxml", "boto3", "dateutil"):
        (directory / f"{module}.py").write_text(code)


def test_code_planted_in_the_working_directory_never_runs(wazuh, source, tmp_path):
    installer.install(source, wazuh, NO_OWNERS)
    cwd, marker = tmp_path / "shared", tmp_path / "planted-code-ran"
    plant(cwd, marker)
    env = {k: v for k, v in cli_env().items() if k not in ("PYTHONPATH", "WAZUH_PATH")}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    launcher = str(wazuh / "wodles" / "ecr-scan" / "ecr-scan")

    result = subprocess.run(
        [launcher, "--run-once", "--output", "stdout", "--replay", RECORDING],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert read_events(result.stdout) == 24
    assert not marker.exists(), marker.read_text()

    result = subprocess.run(
        [
            str(ROOT / "wodle" / "ecr-scan"),
            "install",
            "--wazuh_path",
            str(wazuh),
            "--source",
            str(source.root),
            "--no-venv",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), marker.read_text()


def bare_python(path: Path) -> Path:
    """A Python 3.10+ without boto3, lxml and dateutil (the real one without its site-packages)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{PYTHON}" -S "$@"\n')
    path.chmod(0o755)
    return path


@needs_root
def test_an_interpreter_someone_else_can_change_is_never_recorded(
    wazuh, source, tmp_path, monkeypatch, caplog
):
    """install runs as root with a Python from a directory another user owns: it must not record it."""
    theirs = tmp_path / "home" / "alice" / "venv" / "bin"
    theirs.mkdir(parents=True)
    (theirs / "python3").symlink_to(sys.executable)
    os.chown(tmp_path / "home" / "alice", 65534, 65534)
    monkeypatch.setattr(sys, "executable", str(theirs / "python3"))
    installer.install(source, wazuh, NO_OWNERS)
    record = wazuh / "wodles" / "ecr-scan" / "python.path"
    assert not record.exists() or str(theirs) not in record.read_text()
    assert (
        f"{theirs / 'python3'} not used: {tmp_path / 'home' / 'alice'} is owned by uid 65534" in caplog.text
    )


@needs_root
@pytest.mark.parametrize(
    ("mode_bits", "owner", "why"),
    [
        (0o755, 65534, "is owned by uid 65534"),
        (0o777, 0, "is writable by everyone"),
        (0o775, (0, 65534), "is writable by group 65534"),
        (0o1777, 0, None),  # sticky, like /tmp: only an entry's owner can replace it
        (0o775, (0, 0), None),  # root's own group
    ],
)
def test_who_can_change_an_interpreter(tmp_path, mode_bits, owner, why):
    directory = tmp_path / "opt"
    (directory / "bin").mkdir(parents=True)
    python = directory / "bin" / "python3"
    python.symlink_to(sys.executable)
    uid, gid = owner if isinstance(owner, tuple) else (owner, 0)
    os.chown(directory, uid, gid)
    directory.chmod(mode_bits)
    reason = installer.untrusted_reason(python, uid=0)
    assert (reason is None) if why is None else (reason == f"{directory} {why}")
    link_elsewhere = tmp_path / "link"
    link_elsewhere.symlink_to(python)  # the path through a link: the link's target chain is checked too
    assert installer.untrusted_reason(link_elsewhere, uid=0) == reason


@needs_root
def test_the_launcher_skips_a_recorded_python_someone_else_can_change(wazuh, source, tmp_path):
    installer.install(source, wazuh, NO_OWNERS)
    (wazuh / "logs" / "ossec.log").write_text("")
    theirs = tmp_path / "home" / "alice"
    fake_python(theirs / "venv" / "bin" / "python3", tmp_path / "alice-ran.log")
    os.chown(theirs, 65534, 65534)
    (wazuh / "wodles" / "ecr-scan" / "python.path").write_text(f"{theirs}/venv/bin/python3\n")
    system = tmp_path / "system.log"
    fake_python(tmp_path / "bin" / "python3", system)
    result = run_launcher(wazuh, "--version", path=f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert result.returncode == 0 and result.stdout.startswith("wazuh-ecr-scan "), result.stderr
    assert not (tmp_path / "alice-ran.log").exists()
    assert system.exists()  # the next candidate ran it
    warning = f"WARNING: {theirs}/venv/bin/python3 not used: {theirs} is owned by uid 65534"
    assert warning in result.stderr and warning in (wazuh / "logs" / "ossec.log").read_text()

    world = tmp_path / "world"
    fake_python(world / "python3", tmp_path / "world-ran.log")
    world.chmod(0o777)
    env = {k: v for k, v in cli_env().items() if k not in ("PYTHONPATH", "WAZUH_PATH")}
    env["WAZUH_ECR_SCAN_PYTHON"] = str(world / "python3")
    launcher = str(wazuh / "wodles" / "ecr-scan" / "ecr-scan")
    result = subprocess.run([launcher, "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and not (tmp_path / "world-ran.log").exists()
    assert f"{world} is writable by everyone" in result.stderr


# -- install writes through descriptors: links planted by the wazuh user are replaced, never followed --


def test_links_planted_in_etc_rules_are_never_followed(wazuh, source, tmp_path):
    """etc/rules is root:wazuh 0770: the wazuh user can plant links there before root runs install."""
    rule = source.ruleset("rules")[0]
    decoder = source.ruleset("decoders")[0]
    victim, twin = tmp_path / "victim", tmp_path / "twin"
    victim.write_text("root's file\n")
    victim.chmod(0o600)
    twin.write_bytes(decoder.read_bytes())  # same content as the decoder: install would find it "unchanged"
    twin.chmod(0o600)
    (wazuh / "etc" / "rules" / f".{rule.name}.tmp-{os.getpid()}").symlink_to(victim)  # the old temp name
    (wazuh / "etc" / "decoders" / decoder.name).symlink_to(twin)
    assert main(["install", "--wazuh_path", str(wazuh), "--source", str(source.root), "--no-venv"]) == 0
    assert victim.read_text() == "root's file\n" and mode(victim) == 0o600
    assert twin.read_bytes() == decoder.read_bytes() and mode(twin) == 0o600
    for kind, path in (("rules", rule), ("decoders", decoder)):
        target = wazuh / "etc" / kind / path.name
        assert not target.is_symlink() and target.read_bytes() == path.read_bytes() and mode(target) == 0o660


def test_a_ruleset_directory_replaced_by_a_link_is_refused(wazuh, source, tmp_path, capsys):
    elsewhere = tmp_path / "cron.d"
    elsewhere.mkdir()
    shutil.rmtree(wazuh / "etc" / "decoders")
    (wazuh / "etc" / "decoders").symlink_to(elsewhere)
    assert main(["install", "--wazuh_path", str(wazuh), "--source", str(source.root), "--no-venv"]) == 1
    assert f"{wazuh / 'etc' / 'decoders'} is a symbolic link or not a directory" in capsys.readouterr().err
    assert not list(elsewhere.iterdir())


# -- one route on a bare Debian 12 / Ubuntu 24.04: install makes a private venv ----------------------


def test_install_makes_a_private_venv_when_no_python_has_the_dependencies(
    wazuh, source, tmp_path, monkeypatch
):
    bare = bare_python(tmp_path / "usr" / "bin" / "python3")
    monkeypatch.setattr(sys, "executable", str(bare))
    calls = []

    def make_venv(base: Path, venv: Path) -> None:  # what build_venv leaves: a venv that imports them all
        calls.append((base, venv))
        fake_python(venv / "bin" / "python3", tmp_path / "venv.log")

    command = ["install", "--wazuh_path", str(wazuh), "--source", str(source.root)]
    assert installer.main(command, make_venv=make_venv) == 0
    venv = wazuh / "wodles" / "ecr-scan" / "venv"
    assert calls == [(bare, venv)]
    assert (wazuh / "wodles" / "ecr-scan" / "python.path").read_text() == f"{venv}/bin/python3\n"
    assert installer.main(command, make_venv=make_venv) == 0 and len(calls) == 1  # reused, not rebuilt

    def pip_fails(base: Path, venv: Path) -> None:
        (venv / "bin").mkdir(parents=True)

    shutil.rmtree(venv)
    assert installer.main(command, make_venv=pip_fails) == 1
    assert (
        installer.main([*command, "--no-venv"], make_venv=pip_fails) == 0
    )  # the module installed, with a warning


def test_the_private_venv_really_runs_the_module(wazuh, source, tmp_path, monkeypatch):
    """The real `python -m venv`, offline: --system-site-packages reuses this Python's packages."""
    if sys.prefix != sys.base_prefix:
        pytest.skip("run from a venv: a venv made from its base Python would not see these packages")
    monkeypatch.setattr(sys, "executable", str(bare_python(tmp_path / "usr" / "bin" / "python3")))
    offline = functools.partial(installer.build_venv, system_site_packages=True)
    command = ["install", "--wazuh_path", str(wazuh), "--source", str(source.root)]
    assert installer.main(command, make_venv=offline) == 0
    venv_python = wazuh / "wodles" / "ecr-scan" / "venv" / "bin" / "python3"
    assert (wazuh / "wodles" / "ecr-scan" / "python.path").read_text() == f"{venv_python}\n"
    result = run_launcher(
        wazuh, "--run-once", "--output", "stdout", "--replay", RECORDING, path="/usr/bin:/bin"
    )
    assert result.returncode == 0, result.stderr
    assert read_events(result.stdout) == 24
    assert main(["uninstall", "--wazuh_path", str(wazuh), "--purge"]) == 0
    assert not (wazuh / "wodles" / "ecr-scan").exists()


def test_the_venv_gets_what_the_package_requires():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    required = [line.strip() for line in parser["options"]["install_requires"].splitlines() if line.strip()]
    assert sorted(required) == sorted(installer.REQUIREMENTS)


# -- what install and uninstall tell the administrator -------------------------------------------------


RUNS_MODULE = (
    '  <wodle name="command">\n    <tag>ecr-scan</tag>\n'
    "    <command>{wazuh}/wodles/ecr-scan/ecr-scan --config x --run-once</command>\n  </wodle>\n"
)


def test_uninstall_refuses_while_ossec_conf_still_runs_the_module(wazuh, source, capsys):
    installer.install(source, wazuh, NO_OWNERS)
    ossec_conf = wazuh / "etc" / "ossec.conf"
    ossec_conf.write_text("<ossec_config>\n" + RUNS_MODULE.format(wazuh=wazuh) + "</ossec_config>\n")
    assert main(["uninstall", "--wazuh_path", str(wazuh)]) == EXIT_BAD_CONFIG
    assert f"{ossec_conf} line 4 still runs wodles/ecr-scan/ecr-scan" in capsys.readouterr().err
    assert (wazuh / "wodles" / "ecr-scan" / "ecr-scan").exists()

    commented = "<!--\n" + RUNS_MODULE.format(wazuh=wazuh) + "-->\n"
    disabled = RUNS_MODULE.format(wazuh=wazuh).replace("<tag>", "<disabled>yes</disabled><tag>")
    for block in (commented, disabled):
        ossec_conf.write_text(f"<ossec_config>\n{block}</ossec_config>\n")
        assert installer.read_ossec_conf(ossec_conf, lambda: None).module_line is None
    ossec_conf.write_text("<ossec_config>\n" + RUNS_MODULE.format(wazuh=wazuh) + "</ossec_config>\n")
    assert main(["uninstall", "--wazuh_path", str(wazuh), "--force"]) == 0
    assert not (wazuh / "wodles" / "ecr-scan" / "ecr-scan").exists()
    assert "still runs the module: remove its" in capsys.readouterr().out


def test_restart_is_asked_only_when_rules_or_decoders_changed(wazuh, source, capsys):
    installer.install(source, wazuh, NO_OWNERS)
    assert "Restart Wazuh (wazuh-manager) to load the new rules and decoders." in capsys.readouterr().out
    installer.install(source, wazuh, NO_OWNERS)
    out = capsys.readouterr().out
    assert "Restart Wazuh (wazuh-manager) to load" not in out
    assert "Rules and decoders unchanged: no restart needed for them." in out


def test_on_an_agent_no_ruleset_advice(wazuh, source, capsys):
    (wazuh / "bin" / "wazuh-agentd").write_text("")
    (wazuh / "etc" / "ossec.conf").write_text("<ossec_config>\n  <client/>\n</ossec_config>\n")
    assert main(["install", "--wazuh_path", str(wazuh), "--source", str(source.root), "--no-venv"]) == 0
    out = capsys.readouterr().out
    assert "then restart Wazuh (wazuh-agent):" in out
    assert "<ruleset>" not in out and "rule_dir" not in out and "Restart Wazuh (wazuh-manager)" not in out


def test_stock_wodle_blocks_that_do_not_read_ecr_groups_are_not_reported(tmp_path):
    conf = tmp_path / "ossec.conf"
    conf.write_text(
        '<ossec_config>\n  <wodle name="aws-s3">\n    <disabled>yes</disabled>\n'
        '    <service type="cloudwatchlogs"><aws_log_groups>/aws/ecr/image-scan-findings/a</aws_log_groups>'
        '</service>\n  </wodle>\n  <!-- <wodle name="aws-s3"><service type="cloudwatchlogs">\n'
        "  <aws_log_groups>/aws/ecr/image-scan-findings/b</aws_log_groups></service></wodle> -->\n"
        '  <wodle name="aws-s3">\n    <service type="cloudwatchlogs">\n'
        "      <aws_log_groups>/aws/lambda/x, /aws/ecr/image-scan-findings/c</aws_log_groups>\n"
        "    </service>\n  </wodle>\n</ossec_config>\n"
    )
    facts = installer.read_ossec_conf(conf, lambda: None)
    assert facts.stock_wodle_groups == [(10, "/aws/ecr/image-scan-findings/c")]


def test_uninstall_never_deletes_through_a_linked_directory(wazuh, source, tmp_path):
    installer.install(source, wazuh, NO_OWNERS)
    rule = source.ruleset("rules")[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / rule.name).write_text("not ours\n")
    shutil.rmtree(wazuh / "etc" / "rules")
    (wazuh / "etc" / "rules").symlink_to(elsewhere)
    assert main(["uninstall", "--wazuh_path", str(wazuh)]) == 0
    assert (elsewhere / rule.name).read_text() == "not ours\n"
    assert not (wazuh / "wodles" / "ecr-scan" / "ecr-scan").exists()


def test_install_from_a_checkout_runs_with_the_target_trees_embedded_python(wazuh, source, tmp_path):
    """On a manager the tree named by --wazuh_path has a Python: the checkout's launcher uses it."""
    embedded = tmp_path / "embedded.log"
    fake_python(wazuh / "framework" / "python" / "bin" / "python3", embedded)
    env = {k: v for k, v in cli_env().items() if k not in ("PYTHONPATH", "WAZUH_PATH")}
    env["PATH"] = "/usr/bin:/bin"
    launcher = str(ROOT / "wodle" / "ecr-scan")
    command = [launcher, "install", "--source", str(source.root), "--no-venv", f"--wazuh_path={wazuh}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "wazuh_ecr_scan.install import main" in embedded.read_text()
    assert (wazuh / "wodles" / "ecr-scan" / "ecr-scan").exists()


# -- install reads ossec.conf with the module's own lxml reader, in a Python that has lxml -------------


STOCK_AND_COMMAND = (
    '<ossec_config>\n  <wodle name="aws-s3">\n    <service type="cloudwatchlogs">\n'
    "      <aws_log_groups>/aws/ecr/image-scan-findings/web</aws_log_groups>\n"
    "    </service>\n  </wodle>\n"
    '  <wodle name="command">\n    <tag>ecr-scan</tag>\n'
    "    <command>{wazuh}/wodles/ecr-scan/ecr-scan --config x --run-once</command>\n  </wodle>\n"
    "</ossec_config>\n<ossec_config>\n  <ruleset>\n    <rule_dir>etc/rules</rule_dir>\n  </ruleset>\n"
    "</ossec_config>\n"
)


def test_install_run_by_a_python_without_lxml_reads_ossec_conf_in_the_python_it_records(wazuh, source):
    """On a bare system install runs before lxml exists: the Python it records for the launcher (which
    has lxml) reads ossec.conf with the module's reader and tells install what it found."""
    (wazuh / "etc" / "ossec.conf").write_text(STOCK_AND_COMMAND.format(wazuh=wazuh))
    boot = f"import sys; sys.path.insert(0, {str(ROOT / 'wodle')!r}); from wazuh_ecr_scan.install import main"
    command = [PYTHON, "-S", "-c", f"{boot}; sys.exit(main(sys.argv[1:]))"]  # -S: no site-packages, no lxml
    command += ["install", "--wazuh_path", str(wazuh), "--source", str(source.root), "--no-venv"]
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/", timeout=300)
    assert result.returncode == 0, result.stderr
    lxml_there = subprocess.run([*command[:3], "import lxml"], capture_output=True, env=env, timeout=60)
    assert lxml_there.returncode == 1  # the Python install ran with really had no lxml
    assert "not checked" not in result.stderr
    assert (
        f"{wazuh}/etc/ossec.conf line 4: Wazuh's aws-s3 wodle reads /aws/ecr/image-scan-findings/web"
        in result.stderr
    )
    assert "already runs the module: nothing to add" in result.stdout
    lacks = result.stdout.split("Your <ruleset> lacks these lines; add them too:\n")[1].splitlines()
    assert lacks[0] == "    <decoder_dir>etc/decoders</decoder_dir>" and "rule_dir" not in lacks[1]

    uninstall = [*command[:4], "uninstall", "--wazuh_path", str(wazuh)]
    result = subprocess.run(uninstall, capture_output=True, text=True, env=env, cwd="/", timeout=300)
    assert result.returncode == EXIT_BAD_CONFIG
    assert f"{wazuh}/etc/ossec.conf line 9 still runs wodles/ecr-scan/ecr-scan" in result.stderr


def test_install_without_any_python_with_lxml_prints_the_block_and_says_ossec_conf_was_not_checked(
    wazuh, source, tmp_path, monkeypatch, capsys
):
    (wazuh / "etc" / "ossec.conf").write_text(STOCK_AND_COMMAND.format(wazuh=wazuh))
    monkeypatch.setitem(sys.modules, "wazuh_ecr_scan.ossec_config", None)  # this process: no lxml
    monkeypatch.setattr(sys, "executable", str(bare_python(tmp_path / "usr" / "bin" / "python3")))
    monkeypatch.setattr(installer, "SERVICE_PATH", str(tmp_path / "usr" / "bin"))  # the only python3
    command = ["install", "--wazuh_path", str(wazuh), "--source", str(source.root), "--no-venv"]
    assert installer.main(command) == 0
    out, err = capsys.readouterr()
    assert [line.split("WARNING: ")[1] for line in err.splitlines() if "not checked" in line] == [
        f"{wazuh}/etc/ossec.conf not checked: no Python with {' '.join(installer.REQUIREMENTS)} to read it "
        "with (install without --no-venv makes one in wodles/ecr-scan/venv/): check it against what follows"
    ]
    assert f"Add this to {wazuh}/etc/ossec.conf unless it has it already, then restart Wazuh" in out
    assert '<wodle name="command">' in out and f"{wazuh}/wodles/ecr-scan/ecr-scan --config" in out
    needs = out.split("Your <ruleset> needs these lines; add the ones it lacks (each once):\n")[1]
    assert needs.splitlines()[:2] == [f"    {line}" for line in installer.RULESET_LINES]

    assert installer.main([*command, "--ruleset-only"]) == 0
    out, err = capsys.readouterr()
    assert "not checked: no Python with" in err and "Your <ruleset> needs these lines" in out

    assert installer.main(["uninstall", "--wazuh_path", str(wazuh)]) == 0  # said, not refused: unknown
    assert "not checked: no Python with" in capsys.readouterr().err
    assert not (wazuh / "wodles" / "ecr-scan" / "ecr-scan").exists()


def test_a_malformed_or_missing_ossec_conf_is_named_and_install_completes(wazuh, source, capsys):
    ossec_conf = wazuh / "etc" / "ossec.conf"
    ossec_conf.write_text(
        "<ossec_config>\n" + RUNS_MODULE.format(wazuh=wazuh) + "  <ruleset>\n    <rule_dir>etc/rules\n"
        "  </ruleset>\n</ossec_config>\n"
    )
    command = ["install", "--wazuh_path", str(wazuh), "--source", str(source.root), "--no-venv"]
    assert installer.main(command) == 0
    out, err = capsys.readouterr()
    bad = [line.split("WARNING: ")[1] for line in err.splitlines() if "bad XML" in line]
    assert len(bad) == 1 and bad[0].startswith(f"configuration error at '{ossec_conf}' line 8: bad XML")
    assert "already runs the module" in out  # what comes before the break is read

    ossec_conf.unlink()
    assert installer.main(command) == 0
    out, err = capsys.readouterr()
    assert [line.split("WARNING: ")[1] for line in err.splitlines() if "not checked" in line] == [
        f"{ossec_conf} not checked: cannot read {ossec_conf}: No such file or directory: check it against "
        "what follows"
    ]
    assert "then restart Wazuh (wazuh-manager):" in out


def test_the_ruleset_lines_install_prints_are_those_the_reader_looks_for():
    assert list(installer.RULESET_LINES) == ossec_config.missing_ruleset_lines(etree.fromstring("<x/>"))


def test_a_reader_python_that_fails_is_named_and_nothing_is_assumed(wazuh, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wazuh_ecr_scan.ossec_config", None)  # this process: no lxml
    broken = tmp_path / "bin" / "python3"
    fake_python(broken, tmp_path / "calls.log", works=False)
    facts = installer.read_ossec_conf(wazuh / "etc" / "ossec.conf", lambda: broken)
    assert facts.unchecked == f"{wazuh}/etc/ossec.conf not checked: {broken} could not read it (exit 1)"
    assert "ossec_conf_report_json" in (tmp_path / "calls.log").read_text()
    assert facts.module_line is None and facts.stock_wodle_groups == []
