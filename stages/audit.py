"""DVC stage `audit`: params.yaml `audit` + data/ingested/ -> data/audit/, reports/audit.{html,json}."""

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.audit.audit import AuditConfig, summarise
from pipeline.audit.run import run_audit


def main(params: dict) -> None:
    cfg = config.stage_config("audit", AuditConfig, params)
    lay = Layout()
    rows = run_audit(cfg, lay.ingested, lay.audit, lay.reports)
    print(summarise(rows))


if __name__ == "__main__":
    cli.run(main)
