#!/usr/bin/env python3
"""The benchmark report of dax-rs (Python 3 standard library only).

`benches/report` runs the benches and then this tool, which

* reads criterion's results (`target/criterion/**/new/benchmark.json` for the names and
  throughput, `estimates.json` beside it for the median) and, when present,
  `target/fuse-fio/results.json` written by `scripts/fuse-fio`;
* pairs every dax-rs figure with its baselines from the same bench run, as listed in
  TABLE below (the one place that knows which function is which);
* writes the summary between `<!-- report:begin -->` and `<!-- report:end -->` at the
  top of docs/benchmarks.md, and docs/benchmarks.svg, a plot of throughput by size.

It fails (exit status 2, nothing written to docs/) when a figure of TABLE is missing
from a bench that ran, unless that bench printed a note saying why it skipped it (a
`note:` line naming the missing resource: libpmem, hugetlb, thp). A renamed bench
function therefore stops the report instead of silently dropping a row.

`report.py --self-test` checks the tool on the fixture under benches/report-fixtures/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

BEGIN = "<!-- report:begin -->"
END = "<!-- report:end -->"
KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30


# ----------------------------------------------------------------------------------
# The pairing table
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fig:
    """One criterion benchmark, named as its benchmark.json names it."""

    group: str
    function: str | None = None
    value: str | None = None

    @property
    def key(self) -> tuple:
        return (self.group, self.function, self.value)

    @property
    def name(self) -> str:
        """criterion's full id, as it prints it."""
        return "/".join(p for p in self.key if p is not None)


@dataclass(frozen=True)
class Base:
    """A baseline: its short name in the table, its figure, what it needs to run."""

    label: str
    fig: Fig
    needs: str | None = None
    unit: str | None = None  # when not the row's unit (same scale: "ns/<what>")


@dataclass(frozen=True)
class Row:
    """One line of the summary: a dax-rs figure beside its baselines.

    `unit` is "GiB/s" (throughput, from benchmark.json's byte count) or "ns/<what>"
    (the median time per iteration). `needs` names a resource without which the bench
    skips the whole row (with a note): "hugetlb", "thp", "libpmem".
    """

    bench: str
    label: str
    dax: Fig
    unit: str
    baselines: tuple[Base, ...]
    needs: str | None = None


@dataclass(frozen=True)
class Section:
    title: str
    what: str


# Bench targets in run order, with what their table compares. Only the criterion benches:
# persist_copy_ab and iomap_rw_ab are interleaved harnesses that print their own tables.
SECTIONS: dict[str, Section] = {
    "badblocks": Section(
        "Badblocks check",
        "`Badblocks::check` (seqlock read) against a plain binary search over a sorted "
        "`Vec` of the same records.",
    ),
    "read_section": Section(
        "Read sections",
        "`DaxDevice::read_lock()` + drop against the former two-counter read side "
        "(two locked instructions per section). The writer (`kill`) pays for the cheap "
        "read side, once per device removal.",
    ),
    "fault": Section(
        "Fault engine, simulated page table",
        "TestFs's fault handler into a `SimPageTable` against the kernel's own minor "
        "faults on a `MAP_SHARED` memfd (hugetlb memfd for 2 MiB).",
    ),
    "persist_copy": Section(
        "Persistent copy",
        "`memcpy_persist` against PMDK's `pmem_memcpy_persist` and "
        "`copy_nonoverlapping` + `flush_range` + `drain` (copy+flush).",
    ),
    "iomap_rw": Section(
        "`dax_iomap_rw` through TestFs",
        "`TestFs::pread`/`pwrite` (pmem-like, volatile and hugetlb devices) against a "
        "plain copy of the same bytes and `pread`/`pwrite` on a memfd; 64 MiB file.",
    ),
    "mmu": Section(
        "Real mappings, `dax_fault::mmu`",
        "Loads through a fresh mapping of a 1 GiB TestFs file (first touch) or "
        "`MmuMapping::populate`, against the kernel's own faults on a fresh mapping of "
        "a populated memfd of the same kind, and the loads alone over a mapping "
        "populated beforehand (no faults: the floor).",
    ),
}

PERSIST_SIZES = [4 * KIB * 4**i for i in range(8)]  # 4 KiB .. 64 MiB, as SIZES in lib.rs


def size_label(n: int) -> str:
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n} B"


def tick_label(n: int) -> str:
    """4K, 16K, .., 1M, 4M: a short size for the plot's axis."""
    return size_label(n).replace(" KiB", "K").replace(" MiB", "M").replace(" GiB", "G")


def _table() -> list[Row]:
    rows: list[Row] = []

    # badblocks: group badblocks_check, functions "<case>/badblocks" and "<case>/baseline_vec".
    for case, label in (
        ("empty", "empty table"),
        ("full_hit", "full table (512 records), hit"),
        ("full_miss", "full table (512 records), miss"),
    ):
        g = "badblocks_check"
        rows.append(
            Row("badblocks", label, Fig(g, f"{case}/badblocks"), "ns/check",
                (Base("Vec search", Fig(g, f"{case}/baseline_vec")),))
        )

    # read_section: group read_section.
    for case, dax, label, unit in (
        ("alone", "dax_read_lock", "section, alone", "ns/section"),
        ("busy_neighbour", "dax_read_lock", "section, neighbour busy on the same device",
         "ns/section"),
        ("writer", "kill_run", "writer: `kill` + `run`", "ns/call"),
    ):
        g = "read_section"
        rows.append(
            Row("read_section", label, Fig(g, f"{case}/{dax}"), unit,
                (Base("two-counter", Fig(g, f"{case}/baseline_two_counter")),))
        )

    # fault: one criterion group per function ("fault/<name>"), per fault.
    rows += [
        Row("fault", "PTE read fault", Fig("fault/engine_pte_read"), "ns/fault",
            (Base("kernel, per fault", Fig("fault/kernel_pte_read_per_fault")),
             Base("kernel, per page (fault-around maps 16)", Fig("fault/kernel_pte_read"),
                  unit="ns/page"))),
        Row("fault", "PTE write fault", Fig("fault/engine_pte_write"), "ns/fault",
            (Base("kernel", Fig("fault/kernel_pte_write")),)),
        Row("fault", "PMD read fault", Fig("fault/engine_pmd_read"), "ns/fault",
            (Base("kernel, hugetlb", Fig("fault/kernel_pmd_read"), needs="hugetlb"),)),
        Row("fault", "PMD write fault", Fig("fault/engine_pmd_write"), "ns/fault",
            (Base("kernel, hugetlb", Fig("fault/kernel_pmd_write"), needs="hugetlb"),)),
    ]

    # persist_copy: groups persist_copy/{warm,cold}, functions ours/pmdk/copy_flush, by size.
    for src in ("warm", "cold"):
        g = f"persist_copy/{src}"
        for size in PERSIST_SIZES:
            v = str(size)
            rows.append(
                Row("persist_copy", f"{src} source, {size_label(size)}", Fig(g, "ours", v),
                    "GiB/s",
                    (Base("PMDK", Fig(g, "pmdk", v), needs="libpmem"),
                     Base("copy+flush", Fig(g, "copy_flush", v))))
            )

    # iomap_rw: group iomap_rw, function = case, value = device or baseline.
    devices = (("testfs", "pmem-like", None), ("testfs_volatile", "volatile", None),
               ("testfs_hugetlb", "hugetlb", "hugetlb"))
    for case, label, unit in (
        ("read_1m_seq", "read 1 MiB sequential", "GiB/s"),
        ("write_1m_seq", "write 1 MiB sequential", "GiB/s"),
        ("read_4k_rand", "read 4 KiB random", "ns/call"),
        ("write_4k_rand", "write 4 KiB random", "ns/call"),
        ("read_4k_rand_hot8m", "read 4 KiB random, hot 8 MiB", "ns/call"),
        ("write_4k_rand_hot8m", "write 4 KiB random, hot 8 MiB", "ns/call"),
    ):
        kernel = ("pread", "pread_memfd") if case.startswith("read") else ("pwrite", "pwrite_memfd")
        for dev, dev_label, needs in devices:
            rows.append(
                Row("iomap_rw", f"{label}, {dev_label}", Fig("iomap_rw", case, dev), unit,
                    (Base("plain copy", Fig("iomap_rw", case, "plain_copy")),
                     Base(f"{kernel[0]} memfd", Fig("iomap_rw", case, kernel[1]))),
                    needs=needs)
            )

    # mmu: one criterion group per function ("mmu/<name>"), per 4 KiB page.
    def m(name: str) -> Fig:
        return Fig(f"mmu/{name}")

    floor4k = Base("no-fault floor", m("kernel_4k_mapped_touch"))
    rows += [
        Row("mmu", "4 KiB first touch, read-only mapping", m("dax_pte_first_touch"), "ns/page",
            (Base("kernel", m("kernel_4k_first_touch")), floor4k)),
        Row("mmu", "4 KiB first touch, writable (tracked) mapping",
            m("dax_pte_first_touch_rw"), "ns/page",
            (Base("kernel", m("kernel_4k_first_touch")), floor4k)),
    ]
    for tag, label in (("thp", "shmem THP"), ("hugetlb", "hugetlb")):
        rows.append(
            Row("mmu", f"2 MiB first touch, {label}", m(f"dax_pmd_first_touch_{tag}"), "ns/page",
                (Base("kernel", m(f"kernel_2m_first_touch_{tag}")),
                 Base("no-fault floor", m(f"kernel_2m_mapped_touch_{tag}"))),
                needs=tag)
        )
    rows.append(
        Row("mmu", "`populate` 1 GiB, 4 KiB", m("dax_populate_4k"), "ns/page",
            (Base("kernel MAP_POPULATE", m("kernel_populate_4k")),))
    )
    for tag, label in (("thp", "shmem THP"), ("hugetlb", "hugetlb")):
        rows.append(
            Row("mmu", f"`populate` 1 GiB, {label}", m(f"dax_populate_{tag}"), "ns/page",
                (Base("kernel MAP_POPULATE", m(f"kernel_populate_{tag}")),), needs=tag)
        )
    return rows


TABLE: list[Row] = _table()


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    dashed: bool
    figs: tuple[Fig, ...]


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    series: tuple[Series, ...]


def _panels() -> list[Panel]:
    def persist(src: str) -> Panel:
        g = f"persist_copy/{src}"
        figs = lambda f: tuple(Fig(g, f, str(s)) for s in PERSIST_SIZES)  # noqa: E731
        return Panel(
            f"Persistent copy, {src} source",
            "copy size",
            (Series("dax-rs memcpy_persist", "#1f77b4", False, figs("ours")),
             Series("PMDK pmem_memcpy_persist", "#ff7f0e", True, figs("pmdk")),
             Series("copy+flush", "#7f7f7f", True, figs("copy_flush"))),
        )

    def iomap(op: str) -> Panel:
        kernel = "pread" if op == "read" else "pwrite"
        figs = lambda v: (Fig("iomap_rw", f"{op}_4k_rand", v),  # noqa: E731
                          Fig("iomap_rw", f"{op}_1m_seq", v))
        return Panel(
            f"dax_iomap_rw {op}, TestFs, 64 MiB file",
            "I/O size (4K random, 1M sequential)",
            (Series("dax-rs, pmem-like device", "#1f77b4", False, figs("testfs")),
             Series("dax-rs, volatile device", "#2ca02c", False, figs("testfs_volatile")),
             Series("dax-rs, hugetlb device", "#9467bd", False, figs("testfs_hugetlb")),
             Series("plain copy", "#7f7f7f", True, figs("plain_copy")),
             Series(f"{kernel} on a memfd", "#ff7f0e", True, figs(f"{kernel}_memfd"))),
        )

    return [persist("warm"), persist("cold"), iomap("read"), iomap("write")]


PANELS: list[Panel] = _panels()


def check_table() -> None:
    """Internal consistency of TABLE and PANELS (cheap; run on every invocation)."""
    seen: dict[tuple, str] = {}
    for row in TABLE:
        assert row.bench in SECTIONS, f"row {row.label!r}: unknown bench {row.bench!r}"
        assert row.unit == "GiB/s" or row.unit.startswith("ns/"), row.unit
        assert row.dax.key not in seen, f"{row.dax.name} is the dax-rs figure of two rows"
        for b in row.baselines:
            assert b.unit is None or (b.unit.startswith("ns/") and row.unit.startswith("ns/")), \
                f"{b.fig.name}: a baseline's own unit must be a time, as its row's"
        seen[row.dax.key] = row.label
    paired = {r.dax.key for r in TABLE} | {b.fig.key for r in TABLE for b in r.baselines}
    for p in PANELS:
        for s in p.series:
            for f in s.figs:
                assert f.key in paired, f"plotted figure {f.name} is not in TABLE"


# ----------------------------------------------------------------------------------
# Reading results
# ----------------------------------------------------------------------------------


@dataclass
class Result:
    fig: Fig
    median_ns: float
    throughput_bytes: int | None
    mtime: float
    path: Path


class ReportError(Exception):
    pass


def load_criterion(root: Path) -> dict[tuple, Result]:
    """Every `*/new/benchmark.json` under `root`, keyed by (group, function, value)."""
    out: dict[tuple, Result] = {}
    if not root.is_dir():
        return out
    for bj in sorted(root.rglob("new/benchmark.json")):
        est = bj.with_name("estimates.json")
        try:
            meta = json.loads(bj.read_text())
            fig = Fig(meta["group_id"], meta.get("function_id"), meta.get("value_str"))
            median = float(json.loads(est.read_text())["median"]["point_estimate"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ReportError(f"cannot read criterion result {bj.parent}: {e}") from e
        tp = meta.get("throughput") or {}
        nbytes = tp.get("Bytes") if isinstance(tp, dict) else None
        r = Result(fig, median, nbytes, est.stat().st_mtime, bj.parent)
        old = out.get(fig.key)
        if old is None or r.mtime > old.mtime:
            out[fig.key] = r
    return out


def read_notes(logs: Path | None, bench: str) -> list[str]:
    """The `note:` lines a bench printed in its log (benches/report keeps one per bench)."""
    if logs is None:
        return []
    p = logs / f"{bench}.log"
    try:
        text = p.read_text(errors="replace")
    except OSError:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip().lower().startswith("note:")]


def skip_note(notes: list[str], needs: str | None) -> str | None:
    if needs is None:
        return None
    for n in notes:
        if needs.lower() in n.lower():
            return n
    return None


FIO_KEYS = {"figure": str, "value": (int, float), "unit": str, "baseline": str}


@dataclass
class FioFigure:
    figure: str
    value: float
    unit: str
    baseline: str
    baseline_value: float | None


def load_fio(path: Path, since: float | None, required: bool) -> list[FioFigure] | None:
    """scripts/fuse-fio's results; None when absent and not required."""
    if not path.exists():
        if required:
            raise ReportError(f"scripts/fuse-fio ran but wrote no {path}")
        return None
    if since is not None and required and path.stat().st_mtime < since:
        raise ReportError(f"{path} is older than this run: scripts/fuse-fio did not rewrite it")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not JSON: {e}") from e
    if not isinstance(data, list):
        raise ReportError(f"{path}: expected a JSON list of figures, got {type(data).__name__}")
    out = []
    for i, o in enumerate(data):
        if not isinstance(o, dict):
            raise ReportError(f"{path}[{i}]: expected an object")
        for k, t in FIO_KEYS.items():
            if not isinstance(o.get(k), t) or isinstance(o.get(k), bool):
                raise ReportError(f"{path}[{i}]: missing or wrong type for {k!r}: {o.get(k)!r}")
        bv = o.get("baseline_value")
        if bv is not None and (not isinstance(bv, (int, float)) or isinstance(bv, bool)):
            raise ReportError(f"{path}[{i}]: baseline_value must be a number or null: {bv!r}")
        out.append(FioFigure(o["figure"], float(o["value"]), o["unit"], o["baseline"],
                             None if bv is None else float(bv)))
    return out


# ----------------------------------------------------------------------------------
# Pairing
# ----------------------------------------------------------------------------------


@dataclass
class Cell:
    """A resolved figure: its value in the row's unit, or why it is absent."""

    value: float | None
    skipped: str | None = None


@dataclass
class Resolved:
    row: Row
    dax: Cell
    bases: list[tuple[Base, Cell]]


@dataclass
class Pairing:
    rows: list[Resolved] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def value_in(unit: str, r: Result) -> float:
    if r.median_ns <= 0 or not math.isfinite(r.median_ns):
        raise ReportError(f"{r.fig.name}: median {r.median_ns} ns is not a time")
    if unit == "GiB/s":
        if not r.throughput_bytes:
            raise ReportError(f"{r.fig.name} has no byte throughput in its benchmark.json "
                              f"(the report shows it in GiB/s)")
        return r.throughput_bytes / r.median_ns * 1e9 / GIB
    return r.median_ns


def pair(results: dict[tuple, Result], benches: list[str], since: float | None,
         logs: Path | None) -> Pairing:
    """Resolves TABLE's rows of `benches` against `results` (only those written at or
    after `since`, when given)."""
    out = Pairing()
    fresh = {k: r for k, r in results.items() if since is None or r.mtime >= since}
    used: set[tuple] = set()
    for row in TABLE:
        if row.bench not in benches:
            continue
        notes = read_notes(logs, row.bench)

        def cell(fig: Fig, needs: str | None, role: str) -> Cell:
            used.add(fig.key)
            r = fresh.get(fig.key)
            if r is not None:
                try:
                    return Cell(value_in(row.unit, r))
                except ReportError as e:
                    out.errors.append(str(e))
                    return Cell(None, "error")
            note = skip_note(notes, needs)
            if note is not None:
                return Cell(None, note)
            same_group = sorted(x.fig.name for x in fresh.values() if x.fig.group == fig.group)
            msg = (f"{row.bench}: {fig.name} ({role} of {row.label!r}) is missing from this "
                   f"run of the bench")
            if fig.key in results:
                msg += " (only an older result exists)"
            if needs:
                msg += f"; the bench printed no note about {needs}"
            if same_group:
                msg += f"; its group has: {', '.join(same_group)}"
            msg += ". Renamed bench function? Update TABLE in benches/report.py."
            out.errors.append(msg)
            return Cell(None, "missing")

        dax = cell(row.dax, row.needs, "dax-rs figure")
        bases = [(b, cell(b.fig, b.needs or row.needs, f"baseline {b.label!r}"))
                 for b in row.baselines]
        out.rows.append(Resolved(row, dax, bases))

    groups = {f.group for r in TABLE if r.bench in benches
              for f in [r.dax] + [b.fig for b in r.baselines]}
    # Without `since` every result counts as this run's: only look at the run's groups.
    for k, r in sorted(fresh.items(), key=lambda kv: kv[1].fig.name):
        if k not in used and (since is not None or r.fig.group in groups):
            out.warnings.append(f"{r.fig.name} was measured but is in no row of TABLE "
                                f"(benches/report.py): not in the summary")
    return out


def preflight(listings: dict[str, str]) -> tuple[list[str], list[str]]:
    """Checks TABLE against the benchmark names each bench lists (`-- --list`, which runs
    the bench's set-up but measures nothing): a renamed function is caught before a long
    run. `listings` maps a bench to its output. Returns (errors, warnings)."""
    errors, warnings = [], []
    for bench, text in listings.items():
        lines = [ln.strip() for ln in text.splitlines()]
        names = {ln[: -len(": benchmark")] for ln in lines if ln.endswith(": benchmark")}
        notes = [ln for ln in lines if ln.lower().startswith("note:")]
        want: set[str] = set()
        for row in (r for r in TABLE if r.bench == bench):
            for fig, needs in [(row.dax, row.needs)] + [(b.fig, b.needs or row.needs)
                                                         for b in row.baselines]:
                want.add(fig.name)
                if fig.name not in names and skip_note(notes, needs) is None:
                    errors.append(f"{bench}: {fig.name} (in the row {row.label!r}) is not "
                                  f"among the benchmarks the bench lists. Renamed bench "
                                  f"function? Update TABLE in benches/report.py.")
        for n in sorted(names - want):
            warnings.append(f"{bench}: {n} is in no row of TABLE: it will not be in the summary")
    return errors, warnings


# ----------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------


def fmt_num(x: float, sig: int = 3) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, sig - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def fmt_value(unit: str, x: float) -> str:
    if unit == "GiB/s":
        return f"{fmt_num(x)} GiB/s"
    per = unit.split("/", 1)[1]
    if x >= 1e6:
        return f"{fmt_num(x / 1e6)} ms/{per}"
    if x >= 1e3:
        return f"{fmt_num(x / 1e3)} µs/{per}"
    return f"{fmt_num(x)} ns/{per}"


def fmt_ratio(r: float) -> str:
    return f"{r:.2f}" if r < 10 else f"{r:.1f}"


def md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def skip_text(c: Cell) -> str:
    """Why a figure is absent: the bench's own note."""
    n = c.skipped or ""
    if n.lower().startswith("note:"):
        n = n[5:].strip()
    return md_escape(f"the bench: “{n}”")


def render_rows(rows: list[Resolved]) -> list[str]:
    lines = ["| figure | dax-rs (median) | baseline (median) | dax-rs ÷ baseline |",
             "|---|---:|---|---|"]
    for rr in rows:
        unit = rr.row.unit
        better = "higher is better" if unit == "GiB/s" else "lower is better"
        if rr.dax.value is None:
            lines.append(f"| {rr.row.label} | skipped | {skip_text(rr.dax)} | — |")
            continue
        bcells, ratios = [], []
        for b, c in rr.bases:
            if c.value is None:
                bcells.append(f"{b.label}: skipped ({skip_text(c)})")
                ratios.append("—")
            else:
                bcells.append(f"{b.label} {fmt_value(b.unit or unit, c.value)}")
                ratios.append(fmt_ratio(rr.dax.value / c.value))
        lines.append(f"| {rr.row.label} | {fmt_value(unit, rr.dax.value)} | "
                     f"{'; '.join(bcells)} | {'; '.join(ratios)} ({better}) |")
    return lines


def fio_direction(unit: str) -> str | None:
    u = unit.lower()
    if "/s" in u or "iops" in u or "per sec" in u:
        return "higher is better"
    if u.split("/")[0].strip() in ("ns", "us", "µs", "usec", "ms", "msec", "s", "sec"):
        return "lower is better"
    return None


def render_fio(figs: list[FioFigure]) -> list[str]:
    lines = ["| figure | dax-rs | baseline | dax-rs ÷ baseline |",
             "|---|---:|---|---|"]
    for f in figs:
        base = md_escape(f.baseline)
        if f.baseline_value is None:
            lines.append(f"| {md_escape(f.figure)} | {fmt_num(f.value)} {f.unit} | {base} | — |")
            continue
        ratio = fmt_ratio(f.value / f.baseline_value) if f.baseline_value else "—"
        d = fio_direction(f.unit)
        lines.append(f"| {md_escape(f.figure)} | {fmt_num(f.value)} {f.unit} | "
                     f"{base} {fmt_num(f.baseline_value)} {f.unit} | "
                     f"{ratio}{f' ({d})' if d else ''} |")
    return lines


def machine() -> str:
    model, family, mdl = "unknown CPU", None, None
    cores = 0
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = ln.partition(":")
            k, v = k.strip(), v.strip()
            if k == "processor":
                cores += 1
            elif k == "model name" and model == "unknown CPU":
                model = v
            elif k == "cpu family" and family is None:
                family = v
            elif k == "model" and mdl is None:
                mdl = v
    except OSError:
        pass
    cores = cores or os.cpu_count() or 0
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rustc = "rustc unknown"
    fam = f" (family {family} model {mdl})" if family and mdl else ""
    return f"{model}{fam}, {cores} cores; Linux {platform.release()}; {rustc}"


@dataclass
class RunMeta:
    command: str = "benches/report"
    date: str = ""
    elapsed_s: float | None = None
    load_start: str | None = None
    load_end: str | None = None
    note: str | None = None
    quick: bool = False
    machine: str = ""


def para(text: str) -> str:
    """A paragraph wrapped as the rest of docs/benchmarks.md is."""
    return textwrap.fill(text, width=88, break_long_words=False, break_on_hyphens=False)


def render_summary(p: Pairing, benches: list[str], fio: list[FioFigure] | None,
                   fio_note: str | None, meta: RunMeta, svg_name: str | None) -> str:
    out = ["", "<!-- Generated by benches/report (benches/report.py): edit the tool, "
           "not this block. -->", "## Summary", ""]
    out.append(para("Medians of one run of each bench (criterion), every dax-rs figure "
                    "beside its baselines measured in the same run of the same bench. The "
                    "ratio is dax-rs ÷ baseline per row: for throughput (GiB/s) higher is "
                    "better, for times lower is better. The lab notebook below has each "
                    "bench's method and history."))
    out.append("")
    took = ""
    if meta.elapsed_s is not None:
        t = f"{round(meta.elapsed_s / 60)} min" if meta.elapsed_s >= 90 \
            else f"{round(meta.elapsed_s)} s"
        took = f" (the benches ran for {t}; build and set-up not counted)"
    load = ""
    if meta.load_start or meta.load_end:
        load = f"; load average {meta.load_start or '?'} at the start, " \
               f"{meta.load_end or '?'} at the end"
    note = f"; {meta.note}" if meta.note else ""
    mode = (" **Quick mode** (criterion `--quick`: a few samples per figure, a smoke test, "
            "not figures to compare)." if meta.quick else "")
    missing = [b for b in SECTIONS if b not in benches]
    subset = f" Benches not in this run: {', '.join(missing)}." if missing else ""
    out.append(para(f"Machine: {meta.machine}{load}{note}. Date: {meta.date}. Command: "
                    f"`{meta.command}`{took}.{mode}{subset}"))
    out.append("")
    if svg_name:
        out.append(f"[![Throughput by size: persistent copy and dax_iomap_rw]({svg_name})]"
                   f"({svg_name})")
        out.append("")
    for bench, sec in SECTIONS.items():
        rows = [r for r in p.rows if r.row.bench == bench]
        if not rows:
            continue
        out.append(f"### {sec.title} (`{bench}`)")
        out.append("")
        out.append(para(sec.what))
        out.append("")
        out += render_rows(rows)
        out.append("")
    if fio is not None:
        out.append("### FUSE server under fio (`scripts/fuse-fio`)")
        out.append("")
        out += render_fio(fio) if fio else ["(scripts/fuse-fio reported no figures)"]
        out.append("")
    elif fio_note:
        out.append(para(fio_note))
        out.append("")
    return "\n".join(out)


def update_doc(text: str, block: str) -> str:
    """Replaces what lies between the markers (or puts them under the first `# ` title)."""
    nb, ne = text.count(BEGIN), text.count(END)
    if nb == 1 and ne == 1 and text.index(BEGIN) < text.index(END):
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        return head + BEGIN + block + "\n" + END + tail
    if nb or ne:
        raise ReportError(f"expected one {BEGIN} before one {END}; found {nb} and {ne}")
    lines = text.splitlines(keepends=True)
    at = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("# ")), 0)
    return "".join(lines[:at]) + "\n" + BEGIN + block + "\n" + END + "\n" + "".join(lines[at:])


# ----------------------------------------------------------------------------------
# The plot
# ----------------------------------------------------------------------------------


def nice_max(v: float) -> tuple[float, float]:
    """An axis maximum >= v and its tick step (1, 2, 2.5 or 5 times a power of ten)."""
    if v <= 0:
        return 1.0, 0.25
    raw = v / 5
    p = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * p >= raw:
            step = m * p
            break
    return step * math.ceil(v / step - 1e-9), step


def render_svg(results: dict[tuple, Result], benches: list[str], title: str) -> str:
    pw, ph = 540, 330  # panel size
    ml, mr, mt, mb = 62, 190, 40, 58  # plot margins inside a panel
    cols = 2
    rows = math.ceil(len(PANELS) / cols)
    W, H = pw * cols, ph * rows + 40
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15" '
         f'font-weight="bold">{escape(title)}</text>']
    bench_of = {f.key: r.bench for r in TABLE for f in [r.dax] + [b.fig for b in r.baselines]}
    for i, panel in enumerate(PANELS):
        x0, y0 = (i % cols) * pw, 40 + (i // cols) * ph
        px0, px1 = x0 + ml, x0 + pw - mr
        py0, py1 = y0 + mt, y0 + ph - mb  # top, bottom of the plot area
        o.append(f'<text x="{(px0 + px1) / 2}" y="{y0 + 22}" text-anchor="middle" '
                 f'font-size="13" font-weight="bold">{escape(panel.title)}</text>')
        pts: list[tuple[Series, list[tuple[int, float, Result]]]] = []
        for s in panel.series:
            sp = []
            for f in s.figs:
                r = results.get(f.key)
                if r is not None and r.throughput_bytes and bench_of[f.key] in benches:
                    sp.append((r.throughput_bytes, value_in("GiB/s", r), r))
            pts.append((s, sp))
        allp = [p for _, sp in pts for p in sp]
        o.append(f'<rect x="{px0}" y="{py0}" width="{px1 - px0}" height="{py1 - py0}" '
                 f'fill="none" stroke="#333"/>')
        if not allp:
            o.append(f'<text x="{(px0 + px1) / 2}" y="{(py0 + py1) / 2}" text-anchor="middle" '
                     f'fill="#666">no results in this run</text>')
            continue
        xs = [p[0] for p in allp]
        lx0, lx1 = math.log2(min(xs)), math.log2(max(xs))
        pad = max(0.5, (lx1 - lx0) * 0.05)
        lx0, lx1 = lx0 - pad, lx1 + pad
        ymax, ystep = nice_max(max(p[1] for p in allp) * 1.05)

        def X(b: float) -> float:
            return px0 + (math.log2(b) - lx0) / (lx1 - lx0) * (px1 - px0)

        def Y(v: float) -> float:
            return py1 - v / ymax * (py1 - py0)

        # y grid and labels (linear, from zero)
        n = round(ymax / ystep)
        for k in range(n + 1):
            v = k * ystep
            y = Y(v)
            o.append(f'<line x1="{px0}" y1="{y:.1f}" x2="{px1}" y2="{y:.1f}" stroke="#ddd"/>')
            o.append(f'<text x="{px0 - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        # x ticks: powers of four within the range (log scale)
        e = math.ceil(lx0 / 2) * 2
        while e <= lx1:
            x = X(2**e)
            o.append(f'<line x1="{x:.1f}" y1="{py0}" x2="{x:.1f}" y2="{py1}" stroke="#eee"/>')
            o.append(f'<line x1="{x:.1f}" y1="{py1}" x2="{x:.1f}" y2="{py1 + 5}" stroke="#333"/>')
            o.append(f'<text x="{x:.1f}" y="{py1 + 18}" text-anchor="middle">'
                     f'{escape(tick_label(2**e))}</text>')
            e += 2
        o.append(f'<text x="{(px0 + px1) / 2}" y="{py1 + 38}" text-anchor="middle">'
                 f'{escape(panel.xlabel)}, log scale (K = KiB, M = MiB)</text>')
        o.append(f'<text transform="translate({x0 + 16},{(py0 + py1) / 2}) rotate(-90)" '
                 f'text-anchor="middle">GiB/s (median)</text>')
        # series
        ly = py0 + 6
        for s, sp in pts:
            if not sp:
                continue
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            width = 1.6 if s.dashed else 2.4
            sp.sort(key=lambda p: p[0])
            coords = " ".join(f"{X(b):.1f},{Y(v):.1f}" for b, v, _ in sp)
            o.append(f'<polyline points="{coords}" fill="none" stroke="{s.color}" '
                     f'stroke-width="{width}"{dash}/>')
            for b, v, r in sp:
                o.append(f'<circle cx="{X(b):.1f}" cy="{Y(v):.1f}" r="3" fill="{s.color}">'
                         f'<title>{escape(s.label)}, {escape(size_label(b))}: '
                         f'{fmt_num(v)} GiB/s ({escape(r.fig.name)})</title></circle>')
            lx = px1 + 10
            o.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 22}" y2="{ly}" stroke="{s.color}" '
                     f'stroke-width="{width}"{dash}/>')
            o.append(f'<circle cx="{lx + 11}" cy="{ly}" r="3" fill="{s.color}"/>')
            words, line = s.label.split(), ""
            for w in words:  # wrap legend text at about 20 characters
                if line and len(line) + 1 + len(w) > 19:
                    o.append(f'<text x="{lx + 28}" y="{ly + 4}">{escape(line)}</text>')
                    ly += 14
                    line = w
                else:
                    line = f"{line} {w}".strip()
            o.append(f'<text x="{lx + 28}" y="{ly + 4}">{escape(line)}</text>')
            ly += 22
    o.append("</svg>")
    svg = "\n".join(o) + "\n"
    ET.fromstring(svg)  # well-formed, or this raises
    return svg


# ----------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------


def write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def run(args: argparse.Namespace) -> int:
    check_table()
    benches = [] if args.no_benches else args.benches or list(SECTIONS)
    unknown = [b for b in benches if b not in SECTIONS]
    if unknown:
        print(f"report: unknown bench(es): {', '.join(unknown)}; known: "
              f"{', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    since = Path(args.since).stat().st_mtime if args.since else None
    logs = Path(args.logs) if args.logs else None
    errors: list[str] = []
    for b in args.failed or []:
        where = f" (log: {logs / (b + '.log')})" if logs else ""
        what = "scripts/fuse-fio" if b == "fuse-fio" else f"`cargo bench --bench {b}`"
        errors.append(f"{b}: {what} failed{where}")
    try:
        results = load_criterion(Path(args.criterion))
        p = pair(results, benches, since, logs)
    except ReportError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    errors += p.errors
    fio, fio_note = None, None
    if args.fio_results:
        try:
            fio = load_fio(Path(args.fio_results), since, args.fio_ran)
        except ReportError as e:
            errors.append(f"fuse-fio: {e}")
    if fio is None and args.fio_status:
        fio_note = args.fio_status
    for w in p.warnings:
        print(f"report: warning: {w}", file=sys.stderr)
    load_end = args.load_end
    if load_end is None and Path("/proc/loadavg").exists():
        load_end = Path("/proc/loadavg").read_text().split()[0]
    meta = RunMeta(
        command=args.command, elapsed_s=args.elapsed, load_start=args.load_start,
        load_end=load_end, note=args.note, quick=args.quick, machine=args.machine or machine(),
        date=args.date or datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
    )
    svg_path = Path(args.svg) if args.svg else None
    doc_path = Path(args.doc) if args.doc else None
    svg_link = None
    if svg_path and doc_path:
        svg_link = os.path.relpath(svg_path, doc_path.parent)
    summary = render_summary(p, benches, fio, fio_note, meta, svg_link)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text(
            ("INCOMPLETE: the report failed, see its errors\n" if errors else "") + summary)
    if errors:
        print(f"report: FAILED, {len(errors)} error(s); docs not updated:", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 2
    title = "dax-rs throughput by size, medians" + (" (quick mode)" if args.quick else "")
    svg = render_svg({k: r for k, r in results.items() if since is None or r.mtime >= since},
                     benches, f"{title}: {meta.date}")
    if out:
        (out / "benchmarks.svg").write_text(svg)
    if svg_path:
        write_if_changed(svg_path, svg)
    if doc_path:
        write_if_changed(doc_path, update_doc(doc_path.read_text(), summary))
    if args.print:
        print(summary)
    dest = ", ".join(str(x) for x in (doc_path, svg_path) if x) or "nothing in docs/"
    print(f"report: {len(p.rows)} rows from {len(benches)} bench(es); wrote {dest}"
          + (f" and {out}/" if out else ""))
    return 0


# ----------------------------------------------------------------------------------
# Self-test on the committed fixture
# ----------------------------------------------------------------------------------


def self_test(fixtures: Path) -> int:
    """Runs the tool on benches/report-fixtures/ (trimmed copies of criterion's output
    from one quick run of every bench, the benches' logs, a hand-written fuse-fio
    results.json) and checks parsing, pairing, rendering and the loud failures."""
    check_table()
    failures: list[str] = []

    def expect(cond: bool, what: str) -> None:
        print(f"  {'ok  ' if cond else 'FAIL'} {what}")
        if not cond:
            failures.append(what)

    crit, logs = fixtures / "criterion", fixtures / "logs"
    results = load_criterion(crit)
    expect(len(results) > 100, f"fixture parsed: {len(results)} criterion results")

    # 1. Every row pairs on the fixture; the skips are the ones the logs explain.
    p = pair(results, list(SECTIONS), None, logs)
    expect(not p.errors, "all rows pair: " + "; ".join(p.errors))
    expect(len(p.rows) == len(TABLE), f"{len(p.rows)} rows of {len(TABLE)}")
    skipped = sorted(r.row.label for r in p.rows if r.dax.value is None)
    expect(skipped == ["2 MiB first touch, hugetlb", "`populate` 1 GiB, hugetlb"],
           f"mmu hugetlb rows skipped by the bench's note: {skipped}")
    expect(not p.warnings, "no unpaired figures: " + "; ".join(p.warnings))

    # 2. Values: a time row and a throughput row recomputed by hand from the fixture.
    def one(label: str) -> Resolved:
        return next(r for r in p.rows if r.row.label == label)

    r = one("empty table")
    est = json.loads((crit / "badblocks_check/empty_badblocks/new/estimates.json").read_text())
    expect(r.dax.value == est["median"]["point_estimate"], "badblocks median read as is (ns)")
    r = one("warm source, 64 KiB")
    est = json.loads((crit / "persist_copy_warm/ours/65536/new/estimates.json").read_text())
    gib = 65536 / est["median"]["point_estimate"] * 1e9 / GIB
    expect(abs(r.dax.value - gib) < 1e-9, f"persist copy GiB/s from bytes/median: {gib:.3f}")
    md = "\n".join(render_rows([r]))
    pm = r.bases[0][1].value
    expect(fmt_ratio(gib / pm) in md and "higher is better" in md,
           "ratio dax-rs ÷ PMDK in the row, direction stated")

    # 3. The fuse-fio reader: sample accepted, absence tolerated, bad schema refused.
    fio = load_fio(fixtures / "fuse-fio-results.json", None, False)
    expect(fio is not None and len(fio) == 3 and fio[2].baseline_value is None,
           "fuse-fio sample read")
    md = "\n".join(render_fio(fio or []))
    expect("| 0.53 (higher is better) |" in md and "(lower is better)" in md,
           "fuse-fio ratios and direction from the unit")
    expect(load_fio(fixtures / "no-such.json", None, False) is None, "absent results tolerated")
    for bad, what in (("{}", "not a list"), ('[{"figure": "x", "value": "1"}]', "bad field")):
        with tempfile.TemporaryDirectory() as t:
            f = Path(t) / "r.json"
            f.write_text(bad)
            try:
                load_fio(f, None, False)
                expect(False, f"fuse-fio {what} refused")
            except ReportError:
                expect(True, f"fuse-fio {what} refused")
    try:
        load_fio(fixtures / "no-such.json", None, True)
        expect(False, "results missing after fuse-fio ran is an error")
    except ReportError:
        expect(True, "results missing after fuse-fio ran is an error")

    # 4. Markers: only the block between them changes, the notebook stays byte-identical.
    doc = "# T\n\nintro\n" + BEGIN + "\nold\n" + END + "\n\n## Notebook\n\nbody | x\n"
    new = update_doc(doc, "\nnew")
    expect(new == "# T\n\nintro\n" + BEGIN + "\nnew\n" + END + "\n\n## Notebook\n\nbody | x\n",
           "update_doc replaces only between the markers")
    first = update_doc("# T\n\n## Notebook\n", "\nnew")
    expect(first.startswith("# T\n\n" + BEGIN) and first.endswith("## Notebook\n"),
           "markers inserted under the title the first time")
    try:
        update_doc(BEGIN + BEGIN + END, "x")
        expect(False, "duplicate markers refused")
    except ReportError:
        expect(True, "duplicate markers refused")

    # 5. The summary and the plot render; the SVG parses.
    meta = RunMeta(machine="fixture machine", date="2026-01-01")
    s = render_summary(p, list(SECTIONS), fio, None, meta, "benchmarks.svg")
    expect(s.count("\n| ") >= len(TABLE), "summary has a line per row")
    svg = render_svg(results, list(SECTIONS), "self-test")
    root = ET.fromstring(svg)
    lines = root.findall(".//{http://www.w3.org/2000/svg}polyline")
    expect(len(lines) == 3 + 3 + 5 + 5, f"plot has 16 curves: {len(lines)}")

    # 5b. The whole command path on a copy: writes the doc and the SVG.
    with tempfile.TemporaryDirectory() as t:
        tdoc = Path(t) / "docs" / "benchmarks.md"
        tdoc.parent.mkdir()
        tdoc.write_text("# B\n\n## Notebook\n\nkept\n")
        ns = parse_args(["--criterion", str(crit), "--logs", str(logs), "--doc", str(tdoc),
                         "--svg", str(tdoc.parent / "benchmarks.svg"), "--machine", "m"])
        with contextlib.redirect_stdout(io.StringIO()):
            rc = run(ns)
        text = tdoc.read_text()
        expect(rc == 0 and BEGIN in text and text.endswith("## Notebook\n\nkept\n")
               and "](benchmarks.svg)" in text, "command writes doc and links the plot")

    # 5c. Pre-flight on listings made from the fixture's names: complete, then one renamed.
    listing = {}
    for r in results.values():
        b = next((row.bench for row in TABLE if r.fig.group in
                  {f.group for f in [row.dax] + [x.fig for x in row.baselines]}), None)
        listing[b] = listing.get(b, "") + f"{r.fig.name}: benchmark\n"
    listing["mmu"] += "note: skipping the hugetlb cases\n"
    errs, warns = preflight(listing)
    expect(not errs and not warns, f"pre-flight passes on the fixture's names: {errs} {warns}")
    listing["mmu"] = listing["mmu"].replace("mmu/dax_populate_4k:", "mmu/dax_populate_small:")
    errs, warns = preflight(listing)
    expect(len(errs) == 1 and "mmu/dax_populate_4k" in errs[0] and len(warns) == 1,
           "pre-flight catches a renamed function")

    # 6. Loud failures: a renamed function, a missing figure without a note, stale results.
    def broken(edit) -> tuple[int, str]:
        with tempfile.TemporaryDirectory() as t:
            c = Path(t) / "criterion"
            shutil.copytree(crit, c)
            lg = Path(t) / "logs"
            shutil.copytree(logs, lg)
            stamp = Path(t) / "stamp"
            stamp.touch()
            since = stamp.stat().st_mtime
            for f in c.rglob("*.json"):  # everything "written during this run"
                os.utime(f, (since + 1, since + 1))
            edit(c, lg)
            ns = parse_args(["--criterion", str(c), "--logs", str(lg), "--since", str(stamp),
                             "--machine", "m"])
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = run(ns)
            return rc, err.getvalue()

    def rename(c: Path, _: Path) -> None:
        bj = c / "fault_engine_pte_write/new/benchmark.json"
        d = json.loads(bj.read_text())
        d["group_id"] = "fault/engine_pte_write_v2"
        bj.write_text(json.dumps(d))

    rc, err = broken(rename)
    expect(rc != 0 and "fault/engine_pte_write (dax-rs figure" in err
           and "fault/engine_pte_write_v2" in err, "a renamed bench function fails loudly")

    def drop_pmdk_no_note(c: Path, _: Path) -> None:
        shutil.rmtree(c / "persist_copy_cold/pmdk/4096")

    rc, err = broken(drop_pmdk_no_note)
    expect(rc != 0 and "persist_copy/cold/pmdk/4096" in err and "no note about libpmem" in err,
           "a missing optional baseline without the bench's note fails")

    def drop_pmdk_with_note(c: Path, lg: Path) -> None:
        for d in list(c.glob("persist_copy_*/pmdk")):
            shutil.rmtree(d)
        with (lg / "persist_copy.log").open("a") as f:
            f.write("note: libpmem.so.1 not found (apt-get install libpmem1): skipping the "
                    "PMDK baseline\n")

    rc, err = broken(drop_pmdk_with_note)
    expect(rc == 0, f"PMDK skipped with the bench's note is accepted ({err.strip()[:200]})")

    def stale(c: Path, _: Path) -> None:
        f = c / "read_section/alone_dax_read_lock/new/estimates.json"
        os.utime(f, (1, 1))

    rc, err = broken(stale)
    expect(rc != 0 and "only an older result exists" in err, "a stale result is not reused")

    print("self-test: " + ("PASSED" if not failures else f"FAILED ({len(failures)})"))
    return 0 if not failures else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benches", nargs="*", help=f"bench targets (default: all: "
                    f"{' '.join(SECTIONS)})")
    ap.add_argument("--no-benches", action="store_true",
                    help="no criterion bench ran (only scripts/fuse-fio)")
    ap.add_argument("--self-test", action="store_true",
                    help="check the tool on benches/report-fixtures/ and exit")
    ap.add_argument("--list-benches", action="store_true",
                    help="print the bench targets the report knows, in run order")
    ap.add_argument("--preflight", metavar="DIR",
                    help="check the table against DIR/<bench>.txt (`-- --list` output)")
    ap.add_argument("--criterion", default="target/criterion", help="criterion's output dir")
    ap.add_argument("--since", help="only results written after this file's mtime count")
    ap.add_argument("--logs", help="directory with <bench>.log of each bench's output")
    ap.add_argument("--failed", action="append", help="a bench whose `cargo bench` failed")
    ap.add_argument("--fio-results", help="scripts/fuse-fio's results.json")
    ap.add_argument("--fio-ran", action="store_true", help="scripts/fuse-fio ran in this run")
    ap.add_argument("--fio-status", help="a line for the summary when there are no fio results")
    ap.add_argument("--doc", help="markdown file whose marked block is replaced")
    ap.add_argument("--svg", help="where to write the plot")
    ap.add_argument("--out", help="also write summary.md and benchmarks.svg here")
    ap.add_argument("--print", action="store_true", help="print the summary")
    ap.add_argument("--command", default="benches/report", help="command shown in the summary")
    ap.add_argument("--elapsed", type=float, help="seconds the benches took")
    ap.add_argument("--load-start", help="load average at the start")
    ap.add_argument("--load-end", help="load average at the end (default: now)")
    ap.add_argument("--note", help="added to the machine line (e.g. 'other builds running')")
    ap.add_argument("--quick", action="store_true", help="the run used criterion's --quick")
    ap.add_argument("--machine", help="machine line (default: from /proc/cpuinfo, uname, rustc)")
    ap.add_argument("--date", help="date shown (default: now, UTC)")
    return ap.parse_args(argv)


def main() -> int:
    args = parse_args(sys.argv[1:])
    if args.list_benches:
        print(" ".join(SECTIONS))
        return 0
    if args.self_test:
        return self_test(Path(__file__).resolve().parent / "report-fixtures")
    if args.preflight:
        check_table()
        d = Path(args.preflight)
        benches = args.benches or list(SECTIONS)
        errors, warnings = preflight({b: (d / f"{b}.txt").read_text(errors="replace")
                                      for b in benches})
        for w in warnings:
            print(f"report: warning: {w}", file=sys.stderr)
        for e in errors:
            print(f"report: error: {e}", file=sys.stderr)
        if errors:
            print("report: FAILED before measuring anything", file=sys.stderr)
            return 2
        print(f"report: every figure of the table is listed by {' '.join(benches)}")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
