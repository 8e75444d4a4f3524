"""Wazuh's internal options (etc/internal_options.conf, etc/local_internal_options.conf), as modulesd reads
them."""

from __future__ import annotations

import os


def wazuh_modules_debug(wazuh_path: str) -> int:
    """`wazuh_modules.debug` (0-2) of etc/local_internal_options.conf, else of etc/internal_options.conf:
    the level wazuh-modulesd takes when started without -d (src/wazuh_modules/main.c,
    getDefine_Int("wazuh_modules", "debug", 0, 2)) and passes on to its own wodles as --debug N
    (src/wazuh_modules/wm_aws.c)."""
    for name in ("local_internal_options.conf", "internal_options.conf"):
        value = _internal_option(os.path.join(wazuh_path, "etc", name), "wazuh_modules.debug")
        if value is not None:
            return min(max(int(value), 0), 2) if value.isdigit() else 0
    return 0


def _internal_option(path: str, name: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return None
    value = None
    for line in lines:
        key, sep, text = line.split("#", 1)[0].partition("=")
        if sep and key.strip() == name:
            value = text.strip()  # the last one counts
    return value
