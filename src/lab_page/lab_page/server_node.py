"""lab_page: the lab page's own static HTTP server, for graphs whose WebSocket is the
distribution's foxglove_bridge (which serves no page). Serves the built page and
``/config.json`` (``{"ws_port": ...}``: the page then opens ws://<this host>:<ws_port>).

The HTTP work is in :mod:`lab_page.static_server`; this node declares the parameters, starts
the server thread and reports requests and errors on /diagnostics.
"""

from __future__ import annotations

import socket

from rclpy.node import Node

from lab_page import assets
from lab_page.static_server import StaticServer
from sensorhub_common import diagnostics as diag
from sensorhub_common.params import Param, ParameterError, ParamSet
from sensorhub_common.runner import fatal, run_node


def _ws_path_error(v: str) -> str | None:
    return None if v.startswith("/") else f"must start with '/', got {v!r}"


PARAMS = [
    Param("address", "0.0.0.0", "Address the HTTP server listens on (0.0.0.0 = every interface)",
          read_only=True),
    Param("port", 8080, "HTTP port of the lab page", min=1, max=65535, read_only=True),
    Param("ws_port", 8765, "Port of the Foxglove WebSocket the page connects to (same host)",
          min=1, max=65535, read_only=True),
    Param("ws_path", "/", "Path of that WebSocket", read_only=True, check=_ws_path_error),
]  # fmt: skip


class LabPageNode(Node):
    def __init__(self, **kwargs):
        super().__init__("lab_page", **kwargs)
        self.params = ParamSet(self, PARAMS)
        v = self.params.snapshot()
        self.www = assets.asset_dir()
        config = assets.config_json(v["ws_port"], v["ws_path"])
        try:
            self.server = StaticServer(v["address"], v["port"], self.www, config)
        except OSError as e:
            raise ParameterError(
                f"lab_page: cannot listen on {v['address']}:{v['port']}: {e.strerror or e}"
            ) from None
        self.server.start()
        self.diag = diag.Updater(self, hardware_id=f"lab page on {socket.gethostname()}")
        self.diag.add("http", self._diag_http)
        if self.www is None:
            self.get_logger().error(
                "the lab page is not installed (share/lab_page/www): serving 503; build it with "
                "`tools/build.sh lab_page` (needs Node.js >= 18 and npm)"
            )
        self.get_logger().info(
            f"lab page on http://{v['address']}:{self.server.port}/ (files {self.www}); "
            f"WebSocket port {v['ws_port']}"
        )

    def _diag_http(self, stat) -> None:
        if not self.server.alive():
            fatal("lab_page: the HTTP server thread ended")
            stat.summary(diag.ERROR, "HTTP server thread ended")
        elif self.www is None:
            stat.summary(diag.ERROR, "page not built: serving 503 (tools/build.sh lab_page)")
        else:
            stat.summary(diag.OK, f"serving on port {self.server.port}")
        s = self.server.stats.snapshot()
        stat.add_all(
            {
                "port": self.server.port,
                "requests served": s["requests"],
                "not found (404)": s["not_found"],
                "refused methods (405)": s["refused"],
                "errors (5xx, broken connections)": s["errors"],
                "bytes sent": s["bytes_sent"],
                "www": str(self.www or "(not installed)"),
            }
        )

    def on_shutdown(self) -> None:
        self.server.stop()


def main(args=None) -> None:
    run_node(LabPageNode, args=args)


if __name__ == "__main__":
    main()
