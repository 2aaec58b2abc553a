"""DVC stage `evaluate`: params `evaluate`, `variants`, `seed` -> reports/metrics.json, data/eval/."""
from pipeline import config
from pipeline.evaluate import EvaluateConfig, run_evaluate, summary


def main() -> None:
    params = config.load_params()
    cfg = config.stage_config("evaluate", EvaluateConfig, params)
    metrics = run_evaluate(cfg, sorted(config.variants(params)), config.seed(params))
    print(summary(metrics))


if __name__ == "__main__":
    main()
