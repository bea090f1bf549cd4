"""Where each BLURB file comes from: pinned repository commits, sha256 and terms, as data/SOURCES.md states.

Every file of the data home (the layout of `../shared/data`) is one `SourceFile`: its path in the data home,
its size and sha256 (None only for the EBM PICO train split, which SOURCES.md could not stage and which is
checked against its BLURB count instead), and where it is published: a repository path at a fixed commit,
never a moving branch. PubMedQA's split files are not published; they are generated from the two originals
(`biotune.data.pubmedqa_split`). The upstream host is raw.githubusercontent.com unless
$BIOTUNE_DATA_UPSTREAM points the same paths at another server (a proxy, or the tests' loopback server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote

from biotune.data.registry import get_spec

UPSTREAM_ENV_VAR = "BIOTUNE_DATA_UPSTREAM"
DEFAULT_UPSTREAM = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class PinnedRepo:
    slug: str  # owner/name on GitHub
    commit: str  # full 40-hex commit: the files at this commit are the ones SOURCES.md hashed


# hieunguyen7337/KeBioLM holds the output of BLURB's own data_generation: data/ last changed in feae844,
# indexing/ (BLURB's split id lists) in 27f08c2.
KEBIOLM_DATA = PinnedRepo("hieunguyen7337/KeBioLM", "feae844bfe14dc2371073774983fcbea5af22c68")
KEBIOLM_INDEXING = PinnedRepo("hieunguyen7337/KeBioLM", "27f08c251bae944acbc2af44c364afdc7dd6104a")
PUBMEDQA_REPO = PinnedRepo("pubmedqa/pubmedqa", "3e7616d288b52edaf38f5fd5c59821c7806bde86")


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the data home, e.g. "HoC/indexing/dev_pmid.tsv"
    size: int | None
    sha256: str | None  # None: no recorded hash; verified by its BLURB count, then hashed into the manifest
    repo: PinnedRepo | None  # None: generated from other files of the same dataset
    repo_path: str | None

    @property
    def generated(self) -> bool:
        return self.repo is None

    def upstream_url(self, base: str | None = None) -> str:
        if self.repo is None or self.repo_path is None:
            raise ValueError(f"{self.path} is generated, not downloaded")
        host = (base or upstream_base()).rstrip("/")
        return f"{host}/{self.repo.slug}/{self.repo.commit}/{quote(self.repo_path)}"


@dataclass(frozen=True)
class DatasetSource:
    name: str  # the registry name and data-home folder
    terms: str  # the license or terms as SOURCES.md states them
    needs_acceptance: bool  # a license or terms are named: the user must accept them before a download
    files: tuple[SourceFile, ...]


# Every file SOURCES.md hashed: data-home path, bytes, sha256 (copied from its "Files" tables).
_PINNED_TABLE = """
BC5CDR-chem/dev.tsv 912174 17a6bc43d459c9dedaedad7990eb44ce0c4789a3a9813104aef9d2f3192c8fd0
BC5CDR-chem/test.tsv 960312 4da9183ad83d0921eaca25ba011871308b9476c14f9b10fba7bfee55a9750649
BC5CDR-chem/train.tsv 919213 1272b747a1d64ccfaa21061c515c26e9e1f134e3afd3c2ef14d8cd0697e9a234
BC5CDR-disease/dev.tsv 912174 405332504d3f6d577f33084494d0916bcdfee789aa1bd954e93a5b79239c2967
BC5CDR-disease/test.tsv 960312 a291f73998031d910dd84ae3c52c744d10ddc44042895056f978c39838bd48b3
BC5CDR-disease/train.tsv 919213 ed209466f99f192460c8b2079cb9dd688c445ce1f2601c2c141f6a84b4a7edf2
NCBI-disease/dev.tsv 185336 a91324724fa0783ef3096f060580e6b4e8dfdf83664d48e77951a45b693c0eaa
NCBI-disease/test.tsv 189288 ca56aff802f8c8849793e806914636f7c9d8bf03bbd88c66402266289beb3995
NCBI-disease/train.tsv 1047453 26df55fb9da14f52834c7c7238ec30af271aa4e3bbe2256ef96cab2c0a7e159b
BC2GM/dev.tsv 540170 634e84223ef02cf231fa4b5a5a256ad581efe1405c5bb31986ac0cf055b64e38
BC2GM/test.tsv 1089552 ea0d230134416109a1feb1ff4169e43b89893ef93b91e392c2534944828b724a
BC2GM/train.tsv 2707662 1f180df262ba11c108bf798eae9d94e2090b51985694eb5acd8e9c544045f9a0
JNLPBA/dev.tsv 391239 ac56df325166c779c76177de16efff624f0cdb0e9a6a406c13dbd02b712b1e7c
JNLPBA/test.tsv 843965 6da4243aa7b9822c188bb81391689bcec22756f2ae653b823cfb9cf21d7eb938
JNLPBA/train.tsv 3707879 e3bd594512fcffd9d79dbf4785e805f87c31d576692eeae33458c54b0416a8e0
ebmnlp/dev.tsv 2474109 700c7bf7642fcfde8cfe52605e1ead8f8ffa5d4f6b09b5e96ef62744e604a8d4
ebmnlp/indexing/dev_pmid.tsv 8351 fa31017d91027058a7c1edd1a0f5919a3385a63adc56de7b442ac1f88b70f579
ebmnlp/indexing/test_pmid.tsv 1662 c09ef450e66c13ebb40f65b97bc7b1c2499c2962f27ee7e34113e7b8a66cef45
ebmnlp/indexing/train_pmid.tsv 33384 a07d8fe034d832ea2d3e6a0cbcc7c72ac313a09b5d99416af6a534f68a96bfd7
ebmnlp/test.tsv 486918 60f676f1664ad491a6378b1029c7dd1371c461912322fc6382cec8d6784dd508
chemprot/dev.tsv 2914473 79d7c9954790292585ee6356a12c31b8bd5868923c7138b88b1705da10f4d04d
chemprot/test.tsv 4326668 6d56372be34d5131f43d07964acdd1dd91091b01a36f55c192a3366904a82c79
chemprot/train.tsv 4558256 f588157d03dfe0972f5ac199b2e170ea342a793baf0b702ddecb7625cd3d26f5
DDI/dev.tsv 642029 a6a78c7bc37e959ab0ca7650d55ce62b011a796f2d7e4442c0236a0c1bd27f37
DDI/indexing/dev_files.tsv 3739 5eb7a1d1e947b7836f5c6137dadf4590da29b47441aada7106eb5cef6115f029
DDI/indexing/test_files.tsv 7163 3aef968656fac32e6dab9416a6d4afe0368f797ce705bb9b501e37fad9d7fe84
DDI/indexing/train_files.tsv 26004 6eb73ff441e66149a2e958a48e09808d269dfbac9b84cd4e57a482cf85ba8817
DDI/test.tsv 1754583 e0f34a1172c5bf0a0981343d847a858efc105871b4537fe30488e03cda242330
DDI/train.tsv 9245833 4d7ca5a7a991acccc31a39a3d637b779259c3ae40a12bebdf46cfeff7b15931b
GAD/dev.tsv 94613 ede2bebdf5fa6094a493801f447bb7827ab0e5511fa0c399234e9e77a96d7159
GAD/test.tsv 102294 68fe2b2bddefac2cd5d35b4bc8a13bceee95ee9a582a623632981e893cdb512e
GAD/train.tsv 773149 8c57f5f28a843cd64bcd939c62842cf685552315e7a78069be7d1ceff47bb663
BIOSSES/dev.tsv 5237 15902014e1cf828aaf39ab83051063af3b4aec0f6e38edc3ea609299221d4735
BIOSSES/test.tsv 6639 dd68d01d5cc0f73d6790a94b054fdb14b0cd443979f7fc42d1d98aba2cb6791b
BIOSSES/train.tsv 20669 19dfcb8d4f07636422cb4b945992131383bf0dfa87847012673abcfc026aa9e7
HoC/dev.tsv 391373 c0bae75eab5940db8afd3ac620d391661c826fa1428e38d258c9e730f4358b99
HoC/indexing/dev_pmid.tsv 2408 4c0a9691f64479446913b41b311278439cb2acbbed71b701149e7fde567f0267
HoC/indexing/test_pmid.tsv 4788 59b09556afd52346dd410defc9471ab42d6dec08cebcfbea008332cd789eb740
HoC/indexing/train_pmid.tsv 16750 0bf6597e24207ce8048e6e59c797f38e562e9b0d4eff2a4ac658058caaf6f381
HoC/test.tsv 761669 2e9ffe24c756b126efa2d351a9572ebb671a3473658bc0766d02ec80b9129d48
HoC/train.tsv 2603679 48352fe9828a63254c9302d5c9a13abe0167a5016dd1143e7f7e47c0348c9a81
pubmedqa/ori_pqal.json 2584787 8b3276be8942ebbd77f3ddcda12c1749bf0e490045a736fd8438ee40cf37a41d
pubmedqa/pqal_fold0/dev_set.json 126807 9d8982fa88a2a7f68230c2757e7eb5b495577a61cdca9e03c3ab308bc725d9f5
pubmedqa/pqal_fold0/train_set.json 1160626 7e539dceebfe5d9fbfc8fa1313713436a1e10f6d6f5bad1ed3fd39d1442be265
pubmedqa/test_ground_truth.json 11414 939fe566f09017d13b1ca64d2ddfee0bc2374b366048152997669cccedc44d51
pubmedqa/test_set.json 1297358 f420f49d97516329d81f62d7d454055e3a063dbd0913ebaff915993bb321cbab
BioASQ/dev.tsv 226149 bf9ae5f70164bb9eff330faa6bf827d53d34b721b744abc7e8004865612e6695
BioASQ/indexing/dev_id.tsv 1874 c1df0e306c8dac3812f0b1860a54c94ba1bb7067bd85d80ad00b06c66ed2d2ac
BioASQ/indexing/test_id.tsv 3499 735906f0c74bbe676f8a912da5ae3b0e1a9285223d732f8dee284e2daa45342e
BioASQ/indexing/train_id.tsv 16749 ab069d22866f26c673db19a04c65ed6fb7c62f3caea842374b36e1d16ae16f9a
BioASQ/test.tsv 237982 eab1e35b18a2ea65cd0d780431198568dd15241eaf3f8faadb13372c20156530
BioASQ/train.tsv 2048496 980f3508f4e8022bdd07dfdbe36611aa4c3e1f3801b27560329d14f224577017
"""
_PINNED_BY_PATH: dict[str, tuple[int, str]] = {
    path: (int(size), sha256)
    for path, size, sha256 in (line.split() for line in _PINNED_TABLE.split("\n") if line)
}

# Files without a recorded hash: verified against their BLURB count ("labelled tokens" for EBM PICO).
UNHASHED = ("ebmnlp/train.tsv",)

PUBMEDQA_ORIGINALS = ("pubmedqa/ori_pqal.json", "pubmedqa/test_ground_truth.json")
PUBMEDQA_GENERATED = (
    "pubmedqa/test_set.json",
    "pubmedqa/pqal_fold0/train_set.json",
    "pubmedqa/pqal_fold0/dev_set.json",
)

_CROSS_NER_TERMS = (
    "no license stated in the fork (hieunguyen7337/KeBioLM); the underlying Crichton et al. files "
    "(cambridgeltl/MTL-Bioinformatics-2016) are CC BY 4.0: attribute the original corpus authors"
)
TERMS: dict[str, tuple[str, bool]] = {
    "BC5CDR-chem": (_CROSS_NER_TERMS, True),
    "BC5CDR-disease": (_CROSS_NER_TERMS, True),
    "NCBI-disease": (_CROSS_NER_TERMS, True),
    "BC2GM": (_CROSS_NER_TERMS, True),
    "JNLPBA": ("no license stated in the fork; the JNLPBA/GENIA corpus terms apply", True),
    "ebmnlp": ("no license stated (the fork states none; bepnye/EBM-NLP states none)", False),
    "chemprot": ("no license stated; ChemProt is a BioCreative VI corpus: the BioCreative terms apply", True),
    "DDI": ("DDI corpus: CC BY-NC 4.0 (isegura/DDICorpus README): no commercial use", True),
    "GAD": ("no license stated (BioBERT REdata GAD fold 1)", False),
    "BIOSSES": ("GPL-3.0 (the original gizemsogancioglu/biosses; the fork states none)", True),
    "HoC": ("GPL-3.0 (the original sb895/Hallmarks-of-Cancer; the fork states none)", True),
    "pubmedqa": ("MIT (pubmedqa/pubmedqa LICENSE)", True),
    "BioASQ": ("no license stated; BioASQ data normally requires registration: the BioASQ terms apply", True),
}


def upstream_base() -> str:
    return os.environ.get(UPSTREAM_ENV_VAR) or DEFAULT_UPSTREAM


def _upstream(path: str) -> tuple[PinnedRepo | None, str | None]:
    """The repository and path a data-home file is published at (None, None: generated here)."""
    if path in PUBMEDQA_GENERATED:
        return None, None
    if path in PUBMEDQA_ORIGINALS:
        return PUBMEDQA_REPO, "data/" + path.split("/", 1)[1]
    folder, rest = path.split("/", 1)
    if rest.startswith("indexing/"):
        return KEBIOLM_INDEXING, f"indexing/{folder}/{rest.removeprefix('indexing/')}"
    return KEBIOLM_DATA, f"data/{path}"


def _source_file(path: str) -> SourceFile:
    size, sha256 = _PINNED_BY_PATH.get(path, (None, None))
    repo, repo_path = _upstream(path)
    return SourceFile(path=path, size=size, sha256=sha256, repo=repo, repo_path=repo_path)


def _dataset_source(name: str) -> DatasetSource:
    spec = get_spec(name)
    paths = sorted({*(p for p in _PINNED_BY_PATH if p.split("/", 1)[0] == spec.name), *spec.files.values()})
    # originals before the files generated from them
    paths.sort(key=lambda p: p in PUBMEDQA_GENERATED)
    terms, needs_acceptance = TERMS[spec.name]
    return DatasetSource(spec.name, terms, needs_acceptance, tuple(_source_file(p) for p in paths))


SOURCES: dict[str, DatasetSource] = {name: _dataset_source(name) for name in TERMS}


def source_for(name: str) -> DatasetSource:
    """The dataset's sources by any registry name or alias (an unknown name is a ConfigError)."""
    return SOURCES[get_spec(name).name]


def file_source(path: str) -> SourceFile | None:
    """The pinned source of a data-home-relative path, or None for a file biotune does not fetch."""
    folder = path.split("/", 1)[0]
    if folder not in SOURCES:
        return None
    return next((f for f in SOURCES[folder].files if f.path == path), None)
