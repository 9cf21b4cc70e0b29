"""Peak memory and CPU of the stack's processes, sampled in the background."""

from __future__ import annotations

import threading
from typing import Any

import psutil


class ProcessSampler:
    """Every `interval_s`: RSS and CPU % of each named process; keeps the peaks and the series."""

    def __init__(self, processes: dict[str, psutil.Process], interval_s: float = 1.0) -> None:
        self.processes = processes
        self.interval_s = interval_s
        self.peak_rss_mib: dict[str, float] = dict.fromkeys(processes, 0.0)
        self.peak_cpu_percent: dict[str, float] = dict.fromkeys(processes, 0.0)
        self.cpu_seconds: dict[str, float] = {}
        self.series: list[dict[str, Any]] = []
        self._start = {name: _cpu(p) for name, p in processes.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for process in self.processes.values():
            process.cpu_percent(None)  # the first reading only starts the interval
        tick = 0
        while not self._stop.wait(self.interval_s):
            tick += 1
            row: dict[str, Any] = {"t": round(tick * self.interval_s, 1)}
            for name, process in self.processes.items():
                try:
                    rss = process.memory_info().rss / 2**20
                    cpu = process.cpu_percent(None)
                except psutil.Error:
                    continue
                self.peak_rss_mib[name] = max(self.peak_rss_mib[name], rss)
                self.peak_cpu_percent[name] = max(self.peak_cpu_percent[name], cpu)
                row[name] = {"rss_mib": round(rss, 1), "cpu_percent": round(cpu, 1)}
            self.series.append(row)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        for name, process in self.processes.items():
            try:
                self.cpu_seconds[name] = round(_cpu(process) - self._start[name], 1)
            except psutil.Error:
                self.cpu_seconds[name] = 0.0


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
