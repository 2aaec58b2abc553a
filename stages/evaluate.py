"""DVC stage `evaluate`: params `evaluate`, `variants`, `seed` -> reports/metrics.json, data/eval/."""
import torch

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.metrics.evaluate import EvaluateConfig, run_evaluate, summary


def main(params: dict) -> None:
    # the metric networks are tiny (batches of 16 small images): thread hand-offs cost more than they
    # give (docs/params.md). Large evaluations set evaluate.c2st.device / fid.device to cuda instead.
    torch.set_num_threads(1)
    cfg = config.stage_config("evaluate", EvaluateConfig, params)
    metrics = run_evaluate(cfg, sorted(config.variants(params)), config.seed(params), Layout())
    print(summary(metrics))


if __name__ == "__main__":
    cli.run(main)
