"""A real pymodbus Modbus TCP server process for the live-poll tests.

    python modbus_server.py PORT UNIT REGISTERS_JSON

serves holding registers {address: value} for one unit id on 127.0.0.1:PORT.
"""

import json
import sys

from pymodbus.datastore import ModbusDeviceContext, ModbusServerContext, ModbusSparseDataBlock
from pymodbus.server import StartTcpServer


def main() -> None:
    port, unit, regs = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    values = {a: 0 for a in range(150, 180)}  # version / model SN / pack SN area, blank
    values.update({int(k): v for k, v in regs.items()})
    # register N on the wire is values[N], as on a real BMS; unmapped addresses
    # answer "illegal data address" (exception 2), which the poller must cope with
    block = ModbusSparseDataBlock(values)
    ctx = ModbusServerContext(devices={unit: ModbusDeviceContext(hr=block)}, single=False)
    StartTcpServer(ctx, address=("127.0.0.1", port))


if __name__ == "__main__":
    main()
