import os
import socket
from pathlib import Path

SHARED_DATA = Path(os.environ.get("BATTLOOP_SHARED_DATA",
                                  Path(__file__).resolve().parents[2].parent / "shared" / "data"))
TELEMETRY = SHARED_DATA / "telemetry"
CONSOLE = TELEMETRY / "pylontech_console"
RS485 = TELEMETRY / "pylontech_rs485"
PACE_MAP = TELEMETRY / "register_maps" / "protocols" / "pace" / "pace_bms_v1.3.holding_registry_map.csv"


def pace_image(serial="PACK-48V-0001"):
    """A PACE v1.3 holding-register image with known values (used by several tests)."""
    regs = {0: (-1234) & 0xFFFF, 1: 5321, 2: 87, 3: 96, 4: 8700, 5: 10000, 6: 10000, 7: 123,
            9: 0x0100, 10: 0x0040, 11: 0x0C04, 12: 0}
    regs.update({15 + i: 3300 + i for i in range(16)})
    regs.update({31: 251, 32: 262, 33: 248, 34: (-15) & 0xFFFF, 35: 300, 36: 215})
    raw = serial.encode().ljust(20, b"\x00")
    regs.update({170 + i: int.from_bytes(raw[2 * i:2 * i + 2], "big") for i in range(10)})
    return regs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
