"""`biotune pretrain --extend-vocabulary N`: which words are added, how their rows start, fragmentation
before/after, resume, and the extended model through train, predict and export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from _slices import _slice_blocks, _slice_rows, write_slice
from biotune.cli import app
from biotune.data.loading import load_dataset
from biotune.data.registry import all_specs, get_spec
from biotune.errors import ConfigError
from biotune.models import load_tokenizer
from biotune.predict import Predictor
from biotune.pretrain import PretrainConfig, blurb_dev_texts, load_mlm_model, pretrain
from biotune.textsplit import split_words
from biotune.vocabulary import (
    Fragmentation,
    add_words,
    frequent_fragmented_words,
    init_new_rows,
    require_wordpiece,
)

# minilm-l6's uncased WordPiece: hydroxylase = hydro ##xy ##lase, erythema = er ##ythe ##ma,
# tamoxifen = tam ##ox ##ife ##n, nodosum = nod ##os ##um, nephropathy = ne ##ph ##rop ##athy, while
# kinases = kinase ##s (2 pieces) and deficiency, and, bind are single tokens.
HAND_MADE = [
    "Hydroxylase deficiency: HYDROXYLASE and hydroxylase.",
    "Kinases, kinases and kinases bind kinases.",
    "Tamoxifen and tamoxifen; erythema.",
    "Nodosum erythema (nephropathy).",
]


@pytest.fixture(scope="module")
def corpus_file(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    examples = load_dataset("NCBI-disease", shared_data, splits=("train",)).train
    path = tmp_path_factory.mktemp("corpus") / "ncbi.txt"
    path.write_text("\n".join(" ".join(e.words) for e in examples[:300]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dev_home(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home holding only two BLURB dev files (slices): NCBI-disease (NER) and GAD (RE, masked)."""
    home = tmp_path_factory.mktemp("dev-home")
    for name, cut in (("NCBI-disease", _slice_blocks), ("GAD", _slice_rows)):
        relative = get_spec(name).files["dev"]
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        source = (shared_data / relative).read_text(encoding="utf-8")
        (home / relative).write_text(cut(source, 40), encoding="utf-8")
    return home


def test_the_most_frequent_words_split_into_three_or_more_pieces_are_chosen() -> None:
    tokenizer = load_tokenizer("minilm-l6")
    chosen = frequent_fragmented_words(HAND_MADE, tokenizer, 3)
    # counted lower-cased, as the uncased normalizer writes them; kinases (4 times, 2 pieces) is left out;
    # erythema and tamoxifen (2 each) in alphabetical order
    assert [(w.word, w.count) for w in chosen] == [("hydroxylase", 3), ("erythema", 2), ("tamoxifen", 2)]
    assert chosen[0].pieces == ("hydro", "##xy", "##lase")
    assert list(chosen[0].piece_ids) == tokenizer("hydroxylase", add_special_tokens=False)["input_ids"]
    everything = frequent_fragmented_words(HAND_MADE, tokenizer, 50)
    assert [w.word for w in everything] == ["hydroxylase", "erythema", "tamoxifen", "nephropathy", "nodosum"]
    assert [w.word for w in frequent_fragmented_words(HAND_MADE, tokenizer, 50, min_pieces=2)][:2] == [
        "kinases",
        "hydroxylase",
    ]
    assert frequent_fragmented_words(HAND_MADE, tokenizer, 0) == []


def test_an_added_word_is_one_token_in_running_text_but_not_inside_longer_words() -> None:
    tokenizer = load_tokenizer("minilm-l6")
    before = len(tokenizer)
    pieces = add_words(tokenizer, frequent_fragmented_words(HAND_MADE, tokenizer, 2))
    assert len(tokenizer) == before + 2
    assert pieces["hydroxylase"] == tokenizer.convert_tokens_to_ids(["hydro", "##xy", "##lase"])
    tokens = tokenizer.tokenize("Hydroxylase-deficient, HYDROXYLASE (erythema) hydroxylases xhydroxylase")
    assert tokens[:2] == ["hydroxylase", "-"]
    assert tokens.count("hydroxylase") == 2 and tokens.count("erythema") == 1
    assert tokenizer.tokenize("hydroxylases") == ["hydro", "##xy", "##lase", "##s"]
    assert tokenizer.tokenize("xhydroxylase")[-2:] == ["##xy", "##lase"]
    encoding = tokenizer("Hydroxylase-deficient", return_offsets_mapping=True, add_special_tokens=False)
    assert encoding["offset_mapping"][0] == (0, len("Hydroxylase"))
    assert encoding.word_ids()[:2] == [0, 1]  # a word of its own, as the pre-tokenizer made it
    decoded = tokenizer.decode(tokenizer("HYDROXYLASE levels")["input_ids"], skip_special_tokens=True)
    assert decoded == "hydroxylase levels"  # a normal token: kept where special tokens are skipped


def test_new_rows_start_as_the_mean_of_their_pieces(tiny_bert: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = load_tokenizer(str(tiny_bert))
    loaded = load_mlm_model(str(tiny_bert))  # no MLM head shipped: built, decoder tied to the embeddings
    model = loaded.model
    with torch.no_grad():  # a trained bias differs per token; the new head's starts at zero
        model.get_output_embeddings().bias.normal_()
    old_input = model.get_input_embeddings().weight.detach().clone()
    old_bias = model.get_output_embeddings().bias.detach().clone()
    pieces = add_words(tokenizer, frequent_fragmented_words(HAND_MADE, tokenizer, 3))
    init_new_rows(model, tokenizer, pieces)
    embeddings = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    assert embeddings.shape[0] == len(tokenizer) == old_input.shape[0] + 3
    assert output.weight is embeddings  # still tied after the resize
    for word, piece_ids in pieces.items():
        new_id = tokenizer.convert_tokens_to_ids(word)
        assert torch.allclose(embeddings[new_id], old_input[piece_ids].mean(0))
        assert torch.allclose(output.bias[new_id], old_bias[piece_ids].mean())
    assert torch.equal(embeddings[: old_input.shape[0]], old_input)  # the old rows are untouched
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[101, 2000, 3000, 4000, 102]])).logits[0]
    for word, piece_ids in pieces.items():  # at the start, a new token's logit is its pieces' mean logit
        new_id = tokenizer.convert_tokens_to_ids(word)
        assert torch.allclose(logits[:, new_id], logits[:, piece_ids].mean(-1), atol=1e-5)

    untied = BertForMaskedLM(
        BertConfig(
            vocab_size=len(load_tokenizer("minilm-l6")),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            tie_word_embeddings=False,
        )
    )
    assert untied.get_output_embeddings().weight is not untied.get_input_embeddings().weight
    old_decoder = untied.get_output_embeddings().weight.detach().clone()
    tokenizer = load_tokenizer("minilm-l6")
    pieces = add_words(tokenizer, frequent_fragmented_words(HAND_MADE, tokenizer, 2))
    init_new_rows(untied, tokenizer, pieces)
    for word, piece_ids in pieces.items():
        new_id = tokenizer.convert_tokens_to_ids(word)
        assert torch.allclose(untied.get_output_embeddings().weight[new_id], old_decoder[piece_ids].mean(0))


def test_fragmentation_falls_on_text_with_the_added_words(dev_home: Path) -> None:
    texts, absent = blurb_dev_texts(dev_home)
    assert list(texts) == ["NCBI-disease", "GAD"]
    assert sorted(absent) == sorted(s.name for s in all_specs() if s.name not in texts)
    assert not any("$" in text for text in texts["GAD"])  # RE entity markers are not text
    tokenizer = load_tokenizer("minilm-l6")
    fragmentation = Fragmentation.before(texts, tokenizer)
    add_words(tokenizer, frequent_fragmented_words(texts["NCBI-disease"], tokenizer, 30))
    fragmentation.measure_after(tokenizer)
    report = fragmentation.report()
    assert report["after"] < report["before"]
    ncbi = report["per_source"]["NCBI-disease"]
    assert ncbi["after"] < ncbi["before"] and ncbi["tokens_after"] < ncbi["tokens_before"]
    assert report["words"] == ncbi["words"] + report["per_source"]["GAD"]["words"]
    assert report["before"] == pytest.approx(report["tokens_before"] / report["words"])


def test_non_wordpiece_tokenizers_and_negative_counts_are_refused(tiny_bert: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    with pytest.raises(ConfigError, match="WordPiece"):
        require_wordpiece(PreTrainedTokenizerFast(tokenizer_object=Tokenizer(BPE())), "some-bpe-model")
    corpus = tmp_path / "c.txt"
    corpus.write_text("one document\nanother one\n")
    arguments = ["pretrain", "--model", str(tiny_bert), "--corpus", str(corpus), "--output", str(tmp_path)]
    result = CliRunner().invoke(app, [*arguments, "--extend-vocabulary", "-1"])
    assert isinstance(result.exception, ConfigError) and "--extend-vocabulary must be 0" in str(
        result.exception
    )


def _config(model: Path, corpus: Path, output: Path, data_dir: Path, **extra: object) -> PretrainConfig:
    values: dict[str, object] = {
        "max_length": 64,
        "tokens_per_batch": 256,
        "learning_rate": 5e-3,
        "max_steps": 4,
        "save_every": 2,
        "heldout_fraction": 0.1,
        "heldout_max_sequences": 4,
        "device": "cpu",
        "extend_vocabulary": 10,
    }
    return PretrainConfig(
        model=str(model), corpus=[str(corpus)], output=output, data_dir=data_dir, **{**values, **extra}
    )


def test_a_resumed_run_has_the_same_vocabulary_and_weights(
    tiny_bert: Path, corpus_file: Path, tmp_path: Path
) -> None:
    no_blurb = tmp_path / "no-blurb"
    no_blurb.mkdir()
    whole = pretrain(_config(tiny_bert, corpus_file, tmp_path / "whole", no_blurb))
    assert whole.finished and whole.vocabulary is not None and whole.vocabulary["added"] == 10
    # no BLURB dev split: measured on the held-out documents, and the report says so
    assert "held-out" in whole.vocabulary["measured_on"]
    assert list(whole.vocabulary["fragmentation"]["per_source"]) == ["held-out documents"]
    stopped = pretrain(_config(tiny_bert, corpus_file, tmp_path / "split", no_blurb, stop_at_step=2))
    assert not stopped.finished
    resumed = pretrain(_config(tiny_bert, corpus_file, tmp_path / "split", no_blurb))
    assert resumed.finished and resumed.vocabulary == whole.vocabulary
    base = len(load_tokenizer(str(tiny_bert)))
    left, right = load_tokenizer(str(tmp_path / "whole")), load_tokenizer(str(tmp_path / "split"))
    assert len(left) == len(right) == base + 10  # added once, not again on resume
    assert left.get_added_vocab() == right.get_added_vocab()
    left_weights = load_file(str(tmp_path / "whole" / "model.safetensors"))
    right_weights = load_file(str(tmp_path / "split" / "model.safetensors"))
    assert left_weights["bert.embeddings.word_embeddings.weight"].shape[0] == base + 10
    assert all(torch.allclose(left_weights[k], right_weights[k], atol=1e-6) for k in left_weights)
    with pytest.raises(ConfigError, match="extend_vocabulary"):
        pretrain(_config(tiny_bert, corpus_file, tmp_path / "split", no_blurb, extend_vocabulary=11))


def _all_begin(model_dir: Path, target: Path) -> Path:
    """A copy of a token model whose head ignores the encoder and tags every word B."""
    shutil.copytree(model_dir, target)
    labels = json.loads((target / "biotune_model.json").read_text())["labels"]
    weights = load_file(str(target / "model.safetensors"))
    weights["classifier.weight"] = torch.zeros_like(weights["classifier.weight"])
    weights["classifier.bias"] = torch.tensor([3.0 if label == "B" else 0.0 for label in labels])
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def test_the_extended_model_trains_predicts_and_exports(
    shared_data: Path, tiny_bert: Path, corpus_file: Path, dev_home: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    runner = CliRunner()
    pretrained = tmp_path / "pretrained"
    arguments = ["pretrain", "--model", str(tiny_bert), "--corpus", str(corpus_file), "--output"]
    arguments += [str(pretrained), "--data-dir", str(dev_home), "--extend-vocabulary", "12", "--max-steps"]
    arguments += ["2", "--max-length", "64", "--tokens-per-batch", "256", "--device", "cpu"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "vocabulary: 12 words added (of 12 asked)" in result.output
    summary = json.loads((pretrained / "pretrain.json").read_text())["vocabulary"]
    fragmentation = summary["fragmentation"]
    assert fragmentation["after"] < fragmentation["before"]
    assert list(fragmentation["per_source"]) == ["NCBI-disease", "GAD"]
    assert summary["measured_on"].startswith("the BLURB dev splits of 2 of 13 datasets (absent: ")
    card = (pretrained / "README.md").read_text()
    assert "## Vocabulary" in card and f"{fragmentation['before']:.3f} before" in card
    assert (
        json.loads((pretrained / "config.json").read_text())["vocab_size"]
        == len(load_tokenizer(str(tiny_bert))) + 12
    )
    word = next(w["word"] for w in summary["words"] if w["word"].isalpha())

    task_type, files = write_slice(shared_data, "NCBI-disease", tmp_path / "data", 16)
    run = tmp_path / "run"
    arguments = ["train", "--train-file", str(files["train"]), "--dev-file", str(files["dev"])]
    arguments += ["--test-file", str(files["test"]), "--task-type", task_type, "--model", str(pretrained)]
    arguments += ["--seeds", "1", "--epochs", "1", "--batch-size", "8", "--max-length", "64"]
    result = runner.invoke(app, [*arguments, "--device", "cpu", "--output", str(run)])
    assert result.exit_code == 0, result.output
    model_dir = run / "seed-0" / "model"
    assert (model_dir / "model.safetensors").is_file()

    text = f"Patients with {word.capitalize()}-like {word} ({word.upper()})."
    words = split_words(text)
    tokenizer = load_tokenizer(str(model_dir))
    encoding = tokenizer([w.text for w in words], is_split_into_words=True, add_special_tokens=False)
    word_ids = encoding.word_ids()
    new_id = tokenizer.convert_tokens_to_ids(word)
    for index, w in enumerate(words):
        if w.text.lower() == word:  # the added word, whatever its case, is one token
            assert [encoding["input_ids"][i] for i, v in enumerate(word_ids) if v == index] == [new_id]
    # every word tagged B: one entity per word, with the words' exact character offsets
    (row,) = Predictor.from_folder(_all_begin(model_dir, tmp_path / "all-b")).predict([text])
    assert [(e["start"], e["end"], e["text"]) for e in row["entities"]] == [
        (w.start, w.end, w.text) for w in words
    ]

    exported = tmp_path / "exported"
    result = runner.invoke(app, ["export", str(run), "--seed", "0", "--to", str(exported)])
    assert result.exit_code == 0, result.output
    plain = AutoTokenizer.from_pretrained(str(exported))  # without biotune: the extended tokenizer
    assert plain.tokenize(f"{word.upper()}, {word}") == [word, ",", word]
    assert len(plain) == len(tokenizer)
    result = runner.invoke(app, ["predict", str(exported), "--text", text])
    assert result.exit_code == 0, result.output
    predicted = json.loads(result.stdout)
    assert predicted == Predictor.from_folder(model_dir).predict([text])[0]
    assert all(text[e["start"] : e["end"]] == e["text"] for e in predicted["entities"])
