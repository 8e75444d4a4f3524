"""The analysisd sender against real bound datagram sockets: one socket per run, restart, full, gone."""

from __future__ import annotations

import os
import socket

import pytest
from wazuh_ecr_scan import sender as sender_module
from wazuh_ecr_scan.errors import AnalysisdUnavailable
from wazuh_ecr_scan.sender import SocketSender


def bind(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    return sock


def test_missing_socket_is_a_clear_error(short_dir):
    with pytest.raises(
        AnalysisdUnavailable, match=r"cannot send to analysisd socket .*/nope: .*wazuh-analysisd"
    ):
        SocketSender(str(short_dir / "nope"))


def test_one_socket_for_the_run_and_full_size_datagrams(short_dir, monkeypatch):
    path = str(short_dir / "queue")
    server = bind(path)
    opened: list[socket.socket] = []

    class CountedSocket(socket.socket):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(socket, "socket", CountedSocket)
    sender = SocketSender(path)
    big = b"1:Wazuh-AWS:" + b"x" * (65535 - 12)  # analysisd's largest datagram
    for _ in range(3):
        sender.send(big)
        assert server.recv(1 << 17) == big
    assert len(opened) == 1  # not one socket per event
    sender.close()
    server.close()


def test_analysisd_restart_is_survived_by_one_reconnect(short_dir):
    path = str(short_dir / "queue")
    server = bind(path)
    sender = SocketSender(path)
    sender.send(b"1:x:before")
    assert server.recv(1024) == b"1:x:before"
    server.close()
    os.unlink(path)
    server = bind(path)  # analysisd came back: new socket, same path
    sender.send(b"1:x:after")
    assert server.recv(1024) == b"1:x:after"
    sender.close()
    server.close()


def test_analysisd_gone_for_good_raises(short_dir):
    path = str(short_dir / "queue")
    server = bind(path)
    sender = SocketSender(path)
    server.close()
    os.unlink(path)
    with pytest.raises(AnalysisdUnavailable, match=r"No such file or directory|Connection refused"):
        sender.send(b"1:x:lost")


def test_analysisd_not_reading_times_out_instead_of_hanging(short_dir, monkeypatch):
    monkeypatch.setattr(sender_module, "SEND_TIMEOUT_S", 0.3)
    path = str(short_dir / "queue")
    server = bind(path)
    sender = SocketSender(path)
    with pytest.raises(AnalysisdUnavailable, match="analysisd not reading"):
        for _ in range(100_000):
            sender.send(b"1:x:" + b"y" * 1000)
    server.close()
