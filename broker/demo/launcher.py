"""Starting and stopping the demo's processes: six connectors, then the broker.

Each process runs the ordinary ``junction`` command (``connector serve``, ``broker
serve``), so the demo exercises exactly what an operator would run. The launcher waits
until each answers its health check, seeds the registry once the connectors are up, and
stops everything (SIGTERM, then SIGKILL after a grace period) when asked or on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from broker.demo.layout import AGENCY_FILES, DemoLayout, DemoPorts

__all__ = ["DemoProcesses", "LaunchError", "check_ports"]


class LaunchError(Exception):
    """A demo process did not start; the message says which and where its log is."""


def check_ports(ports: DemoPorts) -> None:
    """Raise ``LaunchError`` unless every port the demo listens on is free.

    Checked before anything starts: a server already on one of them (another demo,
    say) would answer the demo's health checks and registry seeding in its place.
    """
    count = len(AGENCY_FILES)
    last = ports.first_connector + count - 1
    if last > 65535:
        raise LaunchError(
            f"--first-connector-port {ports.first_connector} leaves no room for {count}"
            f" connector ports (the last would be {last}); pick one up to {65536 - count}"
        )
    if ports.first_connector <= ports.broker <= last:
        raise LaunchError(
            f"--port {ports.broker} is one of the connectors' ports"
            f" {ports.first_connector}-{last}; pick another"
        )
    wanted = {ports.broker: ("the broker", "--port")}
    for offset, agency in enumerate(AGENCY_FILES):
        wanted[ports.first_connector + offset] = (
            f"the {agency} connector",
            "--first-connector-port",
        )
    for port, (user, option) in wanted.items():
        with socket.socket() as probe:
            # As the servers bind: a port left in TIME_WAIT by a stopped demo is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise LaunchError(
                    f"port {port}, for {user}, cannot be used ({exc.strerror}; another"
                    f" Junction?); pick another with {option}"
                ) from None


def _junction() -> list[str]:
    return [sys.executable, "-m", "broker.cli"]


@dataclass
class DemoProcesses:
    """The running demo. Use as a context manager, or call ``stop``."""

    layout: DemoLayout
    log_dir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        environment = {**os.environ, **self.extra_env, **env}
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own command line
            _junction() + args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
        log.close()

    def _wait_healthy(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self.processes[name]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = self.log_dir / (name + ".log")
                said = _last_error(log)
                raise LaunchError(
                    f"{name} exited with code {process.returncode}"
                    + (f" ({said})" if said else "")
                    + f"; see {log}"
                )
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise LaunchError(f"{name} did not answer at {url} within {timeout:.0f} s")

    def start_connectors(self, timeout: float = 60.0) -> None:
        for agency in AGENCY_FILES:
            self._spawn(
                f"connector-{agency}",
                ["connector", "serve", "--config", str(self.layout.agency_config(agency))],
                self.layout.connector_environ(),
            )
        for agency in AGENCY_FILES:
            self._wait_healthy(f"connector-{agency}", self.layout.connector_url(agency), timeout)

    def restart_connector(self, agency: str, timeout: float = 60.0) -> None:
        """Start one agency's connector again (killed, or stopped) and wait until it
        answers. Raises ``LaunchError``."""
        name = f"connector-{agency}"
        old = self.processes.get(name)
        if old is not None and old.poll() is None:
            os.killpg(old.pid, signal.SIGKILL)
            old.wait()
        self._spawn(
            name,
            ["connector", "serve", "--config", str(self.layout.agency_config(agency))],
            self.layout.connector_environ(),
        )
        self._wait_healthy(name, self.layout.connector_url(agency), timeout)

    def seed_registry(self, environ: Mapping[str, str] | None = None) -> str:
        """Register the agencies, connectors and agreements (repeatable, audited).

        ``environ`` adds ``JUNCTION_*`` settings, as for ``start_broker``.
        """
        result = subprocess.run(  # noqa: S603 - our own command line
            [*_junction(), "broker", "seed", "--file", str(self.layout.registry_file)],
            env={**os.environ, **self.extra_env, **self.layout.broker_environ(), **(environ or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LaunchError(f"seeding the registry failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def start_broker(
        self,
        timeout: float = 60.0,
        name: str = "broker",
        *,
        port: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> str:
        """Start one broker process and return its URL once it answers.

        ``port`` runs it beside the demo's own (a second replica on the same database);
        ``environ`` adds ``JUNCTION_*`` settings (a PostgreSQL URL, a shorter deadline).
        Raises ``LaunchError``.
        """
        env = {**self.layout.broker_environ(), **(environ or {})}
        if port is not None:
            env["JUNCTION_PORT"] = str(port)
        url = f"http://127.0.0.1:{env['JUNCTION_PORT']}"
        self._spawn(name, ["broker", "serve"], env)
        self._wait_healthy(name, url, timeout)
        return url

    def start(self) -> None:
        self.start_connectors()
        self.seed_registry()
        self.start_broker()

    def check_running(self) -> None:
        """Raise ``LaunchError`` naming the first process that has stopped."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise LaunchError(
                    f"{name} stopped with code {process.returncode}; see "
                    f"{self.log_dir / (name + '.log')}"
                )

    def stop(self, grace: float = 10.0) -> None:
        """Stop every process: SIGTERM, then SIGKILL whatever is left after ``grace``."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> DemoProcesses:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _last_error(log: Path) -> str | None:
    """The one-line ``error:`` a junction command ended with, if its log holds one."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    last = lines[-1].strip() if lines else ""
    return last if last.startswith("error: ") else None
