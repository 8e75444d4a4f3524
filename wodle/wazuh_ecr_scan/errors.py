"""Errors that end a run, each with the exit code the README documents."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_CONFIG = 2
EXIT_CREDENTIALS = 3
EXIT_AWS = 4
EXIT_ANALYSISD = 5
EXIT_STATE = 6
EXIT_INTERRUPTED = 7  # a stop signal (modulesd's <timeout>) ended a pass before every group was read


class FatalError(Exception):
    """An error that ends the run with `exit_code`; its message is one log line."""

    exit_code = EXIT_INTERNAL


class ConfigError(FatalError):
    exit_code = EXIT_BAD_CONFIG


class CredentialsError(FatalError):
    exit_code = EXIT_CREDENTIALS


class AwsError(FatalError):
    exit_code = EXIT_AWS


class AnalysisdUnavailable(FatalError):
    exit_code = EXIT_ANALYSISD


class StateError(FatalError):
    exit_code = EXIT_STATE
