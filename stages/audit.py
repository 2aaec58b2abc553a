"""DVC stage `audit`: params.yaml `audit` + data/ingested/ -> data/audit/, reports/audit.{html,json}."""
from pathlib import Path

from pipeline.core import cli, config
from pipeline.audit.audit import AuditConfig, summarise
from pipeline.audit.run import run_audit


def main(params: dict) -> None:
    cfg = config.stage_config("audit", AuditConfig, params)
    rows = run_audit(cfg, Path("data/ingested"), Path("data/audit"), Path("reports"))
    print(summarise(rows))


if __name__ == "__main__":
    cli.run(main)
