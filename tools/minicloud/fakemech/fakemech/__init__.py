"""Agentless ML2 mechanism driver for test clouds: binds every port as OVS.

Without an L2 agent no real mechanism driver binds a port, and Nova's boot
fails on the binding; this one binds every port at once. Installed into the
minicloud's own venv (entry point ``alwaysbind``), never imported by deskpool.
"""

from typing import Any

from neutron_lib import constants  # type: ignore[import-not-found]
from neutron_lib.api.definitions import portbindings  # type: ignore[import-not-found]
from neutron_lib.plugins.ml2 import api  # type: ignore[import-not-found]


class AlwaysBindMechanismDriver(api.MechanismDriver):  # type: ignore[misc]
    def initialize(self) -> None:
        pass

    def bind_port(self, context: Any) -> None:
        segment = context.segments_to_bind[0]
        context.set_binding(
            segment[api.ID],
            portbindings.VIF_TYPE_OVS,
            {portbindings.CAP_PORT_FILTER: True},
            status=constants.PORT_STATUS_ACTIVE,
        )
