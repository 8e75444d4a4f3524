"""`wazuh-ecr-scan install` into a fake Wazuh tree: files, modes, ownership, idempotence, the ossec.conf
block it prints, the launcher's choice of Python, and `uninstall`."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, cli_env
from lxml import etree
from wazuh_ecr_scan import install as installer
from wazuh_ecr_scan.cli import main
from wazuh_ecr_scan.errors import EXIT_BAD_CONFIG
from wazuh_ecr_scan.install import Owner, Owners, Source

RECORDING = str(ROOT / "tests" / "recordings" / "multi-repo.jsonl")
NO_OWNERS = Owners(Owner(), Owner(), None)


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
def source(tmp_path) -> Source:
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
    return Source(root)


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
    block = etree.fromstring(out.split("then restart Wazuh (wazuh-manager or wazuh-agent):\n")[1].strip())
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
    assert main(["install", "--wazuh_path", str(wazuh), "--source", str(source.root)]) == 0
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
    real = f'exec "{sys.executable}" "$@"' if works else "exit 1"
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
    assert len(result.stdout.splitlines()) == 24  # the installed copy ran (no PYTHONPATH given)
    assert f"-m wazuh_ecr_scan --wazuh_path {wazuh}" in embedded.read_text() and not system.exists()

    fake_python(wazuh / "framework" / "python" / "bin" / "python3", embedded, works=False)
    recorded = tmp_path / "venv" / "bin" / "python3"  # the Python `install` ran with (a venv)
    fake_python(recorded, tmp_path / "recorded.log")
    (wazuh / "wodles" / "ecr-scan" / "python.path").write_text(f"{recorded}\n")
    result = run_launcher(wazuh, "--version", path=path)
    assert result.returncode == 0 and result.stdout.startswith("wazuh-ecr-scan ")
    assert "-m wazuh_ecr_scan" in (tmp_path / "recorded.log").read_text() and not system.exists()

    (wazuh / "wodles" / "ecr-scan" / "python.path").unlink()
    result = run_launcher(wazuh, "--version", path=path)
    assert result.returncode == 0 and result.stdout.startswith("wazuh-ecr-scan ")
    assert "-m wazuh_ecr_scan" in system.read_text()


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
    assert f"{wazuh}/framework/python/bin/pip3 install boto3 lxml python-dateutil" in line


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
    assert 'Remove the <wodle name="command"> block' in capsys.readouterr().out


def test_install_through_the_command_line_twice(wazuh, source):
    command = [sys.executable, "-m", "wazuh_ecr_scan", "install", "--wazuh_path", str(wazuh)]
    command += ["--source", str(source.root)]
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
