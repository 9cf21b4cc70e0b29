"""minicloud: a real OpenStack control plane on loopback for deskpool's integration tests.

Keystone, Glance, Placement, Neutron and Nova (fake virt driver) from PyPI, in
a cached venv of their own, on the machine's MariaDB and RabbitMQ. See README.md.
"""

from tools.minicloud.control import (
    CLOUD,
    DEFAULT_STATE_DIR,
    MiniCloudError,
    Status,
    UpResult,
    down,
    paused,
    status,
    up,
)

__all__ = ["CLOUD", "DEFAULT_STATE_DIR", "MiniCloudError", "Status", "UpResult", "down", "paused", "status", "up"]
