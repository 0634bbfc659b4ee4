"""The sidecar image, built from the Dockerfile and run the way an orchestrator runs it.

No Docker engine or registry is reachable on the project's machines, so the image is built
with podman + runc on a stand-in `python:3.11-slim` made from Debian's own packages
(bookworm's Python is 3.11), by `_ensure_base` below. The test
installs podman, runc and debootstrap when missing and keeps the stand-in base in podman's
image store between runs. It runs the image read-only as its non-root user, runs its
HEALTHCHECK and stops it with SIGTERM, as `docker stop` and the kubelet do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
BASE = "docker.io/library/python:3.11-slim"
IMAGE = "localhost/probe:test"
PACKAGES = ("podman", "runc", "debootstrap")
# The runtime stage adds a virtualenv of probe and its dependencies to the base; 33 MB
# when measured. A bound well above it still catches a build tree, a compiler or a pip
# cache leaking into the image.
MAX_LAYERS_MB = 80

pytestmark = [
    pytest.mark.slow,
    # Reason: a cold run installs three Debian packages, debootstraps a base (~1 min) and
    # builds the image with pip downloading wheels (~1 min); a warm run takes ~30 s.
    pytest.mark.timeout(900),
]


def _run(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=check, env=_env()
    )


def _env() -> dict[str, str]:
    # crun fails on this host's hybrid cgroups and raising rlimits is refused in the
    # sandbox: a containers.conf of our own says so without touching /etc/containers.
    return {**os.environ, "CONTAINERS_CONF": str(_containers_conf())}


def _containers_conf() -> Path:
    path = Path(tempfile.gettempdir()) / "probe-test-containers.conf"
    if not path.exists():
        path.write_text('[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n')
    return path


def podman(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return _run("podman", "--runtime", "runc", *args, timeout=timeout, check=check)


def _install_missing() -> None:
    missing = [
        p for p in PACKAGES if shutil.which(p) is None and shutil.which(f"/usr/sbin/{p}") is None
    ]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"needs {', '.join(missing)} and cannot install them (not root with apt)")
    _run("apt-get", "update", "-q", timeout=600)
    _run("apt-get", "install", "-y", "-q", *PACKAGES, timeout=900)


def _debian_mirror() -> str:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    for line in sources.read_text().splitlines() if sources.exists() else ():
        if line.startswith("URIs:"):
            return line.split()[1]
    return "http://deb.debian.org/debian"


def _ensure_base() -> None:
    """The stand-in base, made once and then kept in podman's image store."""
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory(prefix="probe-rootfs-") as rootfs:
        _run(
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,python3-pip,binutils,ca-certificates",
            "bookworm",
            rootfs,
            _debian_mirror(),
            timeout=900,
        )
        # The slim image has its Python at /usr/local/bin; the Dockerfile relies on it.
        os.symlink("/usr/bin/python3", f"{rootfs}/usr/local/bin/python")
        os.symlink("/usr/bin/pip3", f"{rootfs}/usr/local/bin/pip")
        with subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE) as tar:
            subprocess.run(
                [
                    "podman", "--runtime", "runc", "import",
                    "--change", "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
                    "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                    "-", BASE,
                ],
                stdin=tar.stdout, check=True, capture_output=True, timeout=600, env=_env(),
            )  # fmt: skip
        assert tar.returncode == 0


def _size(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


@pytest.fixture(scope="module")
def image() -> str:
    _install_missing()
    _ensure_base()
    started = time.monotonic()
    podman(
        "build", "--format", "docker", "--pull=never", "--network=host",
        # pip inside the build trusts what the host trusts (a proxy's CA, here).
        "-v", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
        "-t", IMAGE, str(ROOT),
        timeout=900,
    )  # fmt: skip
    built_in = time.monotonic() - started
    layers = (_size(IMAGE) - _size(BASE)) / 1e6
    print(f"\nimage: built in {built_in:.0f} s, {layers:.1f} MB of layers on top of the base")
    assert layers < MAX_LAYERS_MB
    return IMAGE


CONFIG = """
agent: {{ name: image-test, version: 1.0.0-image, listen: "${{PROBE_LISTEN}}" }}
defaults: {{ interval: 2s, timeout: 1s }}
checks:
  # The agent's own port: the container needs nothing from this machine's servers.
  - {{ name: self, type: tcp, host: 127.0.0.1, port: {port}, critical: true }}
"""


@pytest.fixture
def container(image: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    config = tmp_path / "probe.yaml"
    config.write_text(CONFIG.format(port=port))
    config.chmod(0o644)
    # The one writable place, as a Kubernetes emptyDir would be: podman 4.3 gives a
    # `--tmpfs` here the image directory's mode with root as its owner, so the agent's
    # user could not write its state there.
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 10001, 10001) if os.geteuid() == 0 else state.chmod(0o777)
    name = f"probe-test-{uuid.uuid4().hex[:8]}"
    podman(
        "run", "-d", "--name", name, "--network=host", "--read-only",
        "-v", f"{state}:/var/lib/probe",
        "-v", f"{config}:/etc/probe/probe.yaml:ro",
        "-e", f"PROBE_LISTEN=127.0.0.1:{port}",
        image,
    )  # fmt: skip
    try:
        yield name, port
    finally:
        podman("rm", "-f", "-t", "0", name, check=False, timeout=60)


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:  # it holds the connection open until closed
            return error.code, json.loads(error.read())


def _wait_ready(port: int, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = _get(port, "/ready")
            if status == 200:
                return body
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready within {timeout:.0f} s")
        time.sleep(0.2)


def test_image_runs_read_only_as_non_root_passes_healthcheck_and_stops_on_sigterm(
    container: tuple[str, int],
) -> None:
    name, port = container
    ready = _wait_ready(port)
    assert ready["status"] == "ready"
    status, health = _get(port, "/health")
    assert (status, health["version"]) == (200, "1.0.0-image")

    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    denied = podman("exec", name, "touch", "/opt/probe/written", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert podman("healthcheck", "run", name, check=False).returncode == 0

    started = time.monotonic()
    podman("stop", "-t", "10", name, timeout=30)
    stopped_in = time.monotonic() - started
    print(f"\nimage: SIGTERM stop in {stopped_in:.1f} s")
    assert stopped_in < 8  # well inside the 10 s grace: it was not killed
    state = json.loads(podman("inspect", name, "--format", "{{json .State}}").stdout)
    assert state["ExitCode"] == 0
    logs = podman("logs", name).stderr + podman("logs", name).stdout
    assert "probe stopped" in logs
