"""`cardsvc transit`: operators' fare tables, the public keys validators trust, and the
monthly subsidy statement for the funding departments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from cardsvc.app import reports
from cardsvc.app.cli.common import _fail, _runtime, cli_actor, console
from cardsvc.db import unit_of_work
from cardsvc.errors import DomainError
from cardsvc.security import signing
from merchants.transit import schemas as ts
from merchants.transit import service as transit
from settlement.subsidies import service as subsidies

app = typer.Typer(help="Transit: fare tables, validator keys, subsidy statements.",
                  no_args_is_help=True)


@app.command("fare-table")
def fare_table(operator: Annotated[int, typer.Option(help="The transit operator's merchant id")],
               file: Annotated[Path | None, typer.Option(
                   help="Publish this table (JSON: {\"routes\": {ROUTE: {\"full\": N, "
                        "\"student\": N, \"half\": N}}, \"classes\": {...}})")] = None,
               ) -> None:
    """Publish a new signed version of an operator's fare table, or show the versions."""
    rt = _runtime().runtime
    try:
        with unit_of_work(rt.sessions) as db:
            ctx = rt.ctx(db, cli_actor())
            if file is not None:
                body = ts.FareTableCreate.model_validate_json(file.read_bytes())
                row = transit.publish(ctx, operator, body)
                console.print(f"published fare table version {row.version} for operator "
                              f"{operator}, signed with key {row.key_id}")
                return
            for row in transit.tables(ctx, operator):
                out = transit.table_out(row)
                routes = ", ".join(f"{r}: {f['full']}/{f['student']}/{f['half']}"
                                   for r, f in out.routes.items())
                console.print(f"v{out.version} ({out.created_at:%Y-%m-%d} by "
                              f"{out.created_by}, key {out.key_id}) full/student/half — "
                              f"{routes}")
    except ValidationError as exc:
        raise _fail(f"{file}: {exc.errors()[0]['msg']}") from None
    except DomainError as exc:
        raise _fail(exc.detail) from None
    except OSError as exc:
        raise _fail(f"cannot read {exc.filename}: {exc.strerror}") from None


@app.command("public-keys")
def public_keys() -> None:
    """The public keys a validator verifies fare tables with (provision them with the
    validator, never fetch them with the table)."""
    rt = _runtime().runtime
    print(json.dumps(signing.public_keys(rt.keys.secrets), indent=2))


@app.command("statement")
def statement(month: Annotated[str, typer.Option(help="YYYY-MM (ride dates, Asia/Taipei)")],
              programme: Annotated[str | None, typer.Option(help="One programme only")] = None,
              csv: Annotated[Path | None, typer.Option(help="Write the statement as CSV")] = None,
              chart: Annotated[Path | None, typer.Option(help="Write a bar chart (SVG)")] = None,
              ) -> None:
    """A month's concession ride subsidies by programme and operator."""
    rt = _runtime().runtime
    try:
        with unit_of_work(rt.sessions) as db:
            out = subsidies.statement(rt.ctx(db, cli_actor()), month, programme)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    console.print(reports.subsidy_table(out))
    for path, content in ((csv, subsidies.to_csv), (chart, subsidies.to_svg)):
        if path is not None:
            path.write_text(content(out), encoding="utf-8")
            console.print(f"wrote {path}")
