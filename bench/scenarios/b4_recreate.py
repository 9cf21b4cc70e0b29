"""B4 recreate: 500 idle desktops moved to a new template version while at least 250 stay
ready, on a cloud that builds in 4 s with 30 builds at once.

Figures: elapsed / (500 / 30 x 4 s), the time the cloud alone would need; the fewest ready
desktops seen (sampled every 0.25 s). Targets: <= 1.25; never below the floor.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import bench_stack, create_pool, pool_spec, pool_view, wait_for, wait_ready
from bench.scenarios.b3_refill import BUILD_S, CONCURRENCY


class ReadyWatch:
    """Samples the pool's ready count in the background; keeps the lowest."""

    def __init__(self, admin: httpx.Client, pool_id: str) -> None:
        self.lowest: int | None = None
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(admin, pool_id), daemon=True)

    def _run(self, admin: httpx.Client, pool_id: str) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            ready = int(pool_view(admin, pool_id)["counts"]["ready"])
            self.samples.append((round(time.monotonic() - started, 2), ready))
            self.lowest = ready if self.lowest is None else min(self.lowest, ready)
            self._stop.wait(0.25)

    def __enter__(self) -> ReadyWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def run(root: Path, quick: bool) -> dict[str, Any]:
    size = 60 if quick else 500
    floor = size // 2
    cloud_config = {"delays": {"build": 0.0, "delete": 0.0}, "faults": {"max_builds_in_flight": CONCURRENCY}}
    with bench_stack(root, cloud=cloud_config) as stack, httpx.Client(base_url=stack.cloud_url, timeout=30) as cloud:
        admin = stack.admin()
        spec = pool_spec("Recreate", prestarted=size, max_desktops=size)
        pool_id = create_pool(admin, spec)
        wait_ready(admin, pool_id, size, timeout_s=900)
        cloud.post("/_admin/delays", json={"build": BUILD_S})
        current = pool_view(admin, pool_id)["spec"]
        changed = admin.put(
            f"/pools/{pool_id}", json={**current, "template": {**current["template"], "image": "ubuntu-desktop"}}
        )
        changed.raise_for_status()
        with ReadyWatch(admin, pool_id) as watch:
            started = time.monotonic()
            response = admin.post(
                f"/pools/{pool_id}/recreate", json={"floor": floor, "batch_size": 100, "max_failures": 5}
            )
            response.raise_for_status()
            final = wait_for(
                lambda: admin.get(f"/pools/{pool_id}/rollout").json(),
                lambda r: r["status"] != "running",
                timeout_s=1200,
                interval_s=0.5,
            )
            wait_ready(admin, pool_id, size, timeout_s=300)
            elapsed = time.monotonic() - started
        view = admin.get(f"/desktops?pool={pool_id}").json()
    ideal = size / CONCURRENCY * BUILD_S
    on_new = sum(1 for d in view if d["template_version"] == 2 and d["state"] == "ready")
    lowest = watch.lowest if watch.lowest is not None else 0
    return {
        "desktops": size,
        "floor": floor,
        "rollout_status": final["status"],
        # What a rollout that did not complete said (its failed desktops' last reason).
        "rollout_reason": final.get("reason") or final.get("paused_reason") or "",
        "rollout_failures": final.get("failures"),
        "elapsed_s": round(elapsed, 1),
        "cloud_bound_s": round(ideal, 1),
        "ratio": round(elapsed / ideal, 3),
        "lowest_ready": lowest,
        "ready_on_new_version": on_new,
        "ready_samples": watch.samples[:: max(1, len(watch.samples) // 200)],
        "target": "elapsed / (desktops / 30 x 4 s) <= 1.25; ready never below the floor",
        "target_met": final["status"] == "completed" and elapsed / ideal <= 1.25 and lowest >= floor,
    }
