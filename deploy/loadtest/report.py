"""The load test's report: a table per scenario from its raw samples, and the exit status."""

from __future__ import annotations

from typing import Any

from loadtest import config
from loadtest.stats import (
    Sample,
    achieved_rate,
    by_name,
    fmt_table,
    summarize,
    verdict,
    window,
)


def _row(label: str, summary: dict[str, Any]) -> dict[str, Any]:
    return {"label": label, **summary}


def scenario_report(scenario: config.Scenario, result: dict[str, Any]) -> dict[str, Any]:
    """Tables for one scenario from its raw samples; returns what goes into the JSON."""
    samples = [Sample.from_row(row) for row in result["samples"]]
    report: dict[str, Any] = {"title": scenario.title, "phases": []}
    if scenario.load is not None:
        phase = result["phases"][0]
        seconds = phase["end"] - phase["start"]
        inside = window(samples, phase["start"], phase["end"])
        total = summarize(inside, seconds)
        names = by_name(inside, seconds)
        rows = [_row(name, s) for name, s in names.items()] + [_row("all requests", total)]
        print(fmt_table(rows, f"\n{scenario.name}: {scenario.title} ({seconds:.0f} s)"))
        report.update(summary=total, endpoints=names, seconds=round(seconds, 1))
        return report
    rows = []
    for phase in result["phases"]:
        if phase["kind"] not in {"step", "confirm"}:
            continue
        seconds = phase["end"] - phase["start"]
        inside = window(samples, phase["start"], phase["end"])
        summary = summarize(inside, seconds)
        achieved = achieved_rate(inside, phase["start"], phase["end"])
        passed, reasons = verdict(summary, phase["rate"], achieved)
        label = f"{phase['kind']} @ {phase['rate']:g} req/s"
        rows.append(_row(f"{label} {'ok' if passed else 'FAIL'}", summary))
        report["phases"].append(
            {
                "kind": phase["kind"],
                "rate": phase["rate"],
                "users": phase["users"]["IngestUser"],
                "seconds": round(seconds, 1),
                "passed": passed,
                "reasons": reasons,
                "summary": summary,
            }
        )
    print(fmt_table(rows, f"\n{scenario.name}: {scenario.title}"))
    for phase in report["phases"]:
        if phase["reasons"]:
            print(f"  {phase['kind']} @ {phase['rate']:g}: {'; '.join(phase['reasons'])}")
    confirmed = [p for p in report["phases"] if p["kind"] == "confirm" and p["passed"]]
    # What was sustained is what the server answered, not only what was offered.
    best = confirmed[-1] if confirmed else None
    report["sustained_rate"] = best["summary"]["req_per_s"] if best else None
    report["sustained_offered_rate"] = best["rate"] if best else None
    report["sustained"] = best["summary"] if best else None
    if best:
        print(
            f"  sustained single-item ingest: {best['summary']['req_per_s']:.1f} req/s "
            f"(offered {best['rate']:g}) for {best['seconds']:.0f} s, "
            f"p99 {best['summary']['p99_ms']:.1f} ms, {best['summary']['server_errors']} x 5xx"
        )
    else:
        print("  no rate held p99 <= 100 ms with zero 5xx for the whole confirmation run")
    return report


def exit_status(output: dict[str, Any]) -> int:
    reports = output["scenarios"].values()
    server_errors = sum(
        (r.get("summary") or {}).get("server_errors", 0)
        + sum(p["summary"]["server_errors"] for p in r.get("phases", []))
        for r in reports
    )
    ingest = output["scenarios"].get("ingest")
    confirmed = ingest is None or ingest.get("sustained_rate") is not None
    print(
        f"total time {output['wall_seconds']:.0f} s; 5xx responses: {server_errors}; "
        f"sustained ingest {'confirmed' if confirmed else 'NOT confirmed'}"
    )
    return 0 if confirmed and server_errors == 0 else 1
