"""DVC stage `audit`: params.yaml `audit` + data/ingested/ -> data/audit/, reports/audit.{html,json}."""
from pathlib import Path

from pipeline import config
from pipeline.audit import AuditConfig, run_audit, summarise


def main() -> None:
    cfg = config.stage_config("audit", AuditConfig)
    rows = run_audit(cfg, Path("data/ingested"), Path("data/audit"), Path("reports"))
    print(summarise(rows))


if __name__ == "__main__":
    main()
