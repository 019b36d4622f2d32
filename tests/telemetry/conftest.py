import json
import socket
import subprocess
import sys
import time
from pathlib import Path

# make the helpers next to this file importable as plain modules from these tests
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402

from telemetry_helpers import free_port, pace_image  # noqa: E402


@pytest.fixture
def modbus_server():
    port = free_port()
    regs = pace_image("LIVE-PACK-7")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("modbus_server.py")), str(port), "3",
                             json.dumps({str(k): v for k, v in regs.items()})],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode())
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("modbus server did not start")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


