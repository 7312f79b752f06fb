"""A test-only probe of the pack's HTTP routes (tests/test_server_routes_hostile.py): which thread runs the functions
that do their work, and a hold that keeps that work waiting, so that a test can look at the server while a request is
being computed, deterministically (no timing).

``POST /recapture_test/route_probe {"wrap": [names in the pack's nodes/_routes.py], "hold": bool}`` puts back what an
earlier call wrapped, wraps the named functions of that module, forgets the calls seen and sets the hold; while it is
set, a wrapped call waits (at most HOLD_LIMIT_S) until ``{"release": true}``. ``GET`` answers
``{"calls": [{"function", "thread", "on_event_loop"}], "waiting": n, "workers": n, "capacity": n}``.
"""
import sys
import threading

from aiohttp import web

#: A held call goes on by itself after this long, so that a server whose routes (wrongly) compute on the event loop
#: is stuck for a while, not for good.
HOLD_LIMIT_S = 20.0


def _routes_module():
    for name, module in list(sys.modules.items()):
        if name.endswith("nodes._routes") and getattr(module, "PATH_ROUTE", None) == "/recapture/camera_path":
            return module
    raise LookupError("the ReCapture pack's nodes/_routes.py is not loaded")


class _Probe:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls, self.waiting = [], 0
        self.gate = threading.Event()
        self.gate.set()
        self.loop_thread = None
        self.originals = {}

    def wrap(self, module, names):
        for name, original in self.originals.items():
            setattr(module, name, original)
        self.originals = {name: getattr(module, name) for name in names}
        for name, original in self.originals.items():
            setattr(module, name, self._probed(name, original))

    def _probed(self, name, original):
        def probed(*args, **kwargs):
            with self.lock:
                self.calls.append({"function": name, "thread": threading.current_thread().name,
                                   "on_event_loop": threading.get_ident() == self.loop_thread})
                self.waiting += 1
            try:
                self.gate.wait(HOLD_LIMIT_S)
            finally:
                with self.lock:
                    self.waiting -= 1
            return original(*args, **kwargs)

        return probed


PROBE = _Probe()


def register():
    from server import PromptServer

    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        return

    @instance.routes.post("/recapture_test/route_probe")
    async def change(request):
        PROBE.loop_thread = threading.get_ident()  # this handler runs on the server's event loop
        body = await request.json()
        if body.get("release"):
            PROBE.gate.set()
            return web.json_response({"released": True})
        PROBE.wrap(_routes_module(), body.get("wrap", []))
        with PROBE.lock:
            PROBE.calls = []
        if body.get("hold"):
            PROBE.gate.clear()
        else:
            PROBE.gate.set()
        return web.json_response({"wrapped": sorted(PROBE.originals)})

    @instance.routes.get("/recapture_test/route_probe")
    async def look(request):
        PROBE.loop_thread = threading.get_ident()
        routes = _routes_module()
        with PROBE.lock:
            return web.json_response({"calls": list(PROBE.calls), "waiting": PROBE.waiting,
                                      "workers": getattr(routes, "ROUTE_WORKERS", None),
                                      "capacity": getattr(routes, "ROUTE_JOBS", None)})


register()
