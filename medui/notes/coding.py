"""ICD-10-CM coding of problem mentions: ranked candidates over the full billable code set, or none when nothing
is close enough.

Every leaf (billable) code of the PyPI package `simple_icd_10_cm` is indexed by its description, its inclusion
terms and "includes" notes; a category's own description and notes also point at its unspecified leaf ("diabetes
NOS" under E11 → E11.9). The clinical lexicon adds synonyms and abbreviations ("T2DM" → E11.9): an exact lexicon
phrase is answered first with score 1.0. Ranking is TF-IDF (word 1–2-grams plus character 3–5-grams, which
tolerate misspellings and word forms) with cosine similarity, through scikit-learn. The index is built once per
process and kept on disk under MEDUI_HOME/cache/icd10 because building it takes tens of seconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import numpy as np
from scipy import sparse

from medui.notes import lexicon

SYSTEM = "ICD-10-CM"
# Gibberish scores below 0.11 and one-typo words ("hypertensoin", "diabetis") 0.23-0.26: abstain below this.
ABSTAIN_BELOW = 0.2
_N_FEATURES = 2**20
_MAX_ANSWERS = 8192
# Chapter 20, external causes (V00-Y99: "Unspecified fall", "Car occupant injured"), says how an injury happened,
# never what the problem is: a mention of "fall" or "overdose" must not be coded as its cause.
_EXTERNAL_CAUSES = "VWXY"
_INDEX_FORMAT = 3  # bump when the index text or features change, so old caches are not reused

# ICD wording that says nothing about the condition itself; removed from index rows and queries alike so that
# "Chest pain, unspecified" and "Other chest pain" both read "chest pain".
_FILLER = re.compile(
    r"\((?:[^()]*)\)|\b(?:not elsewhere classified|site not specified|not otherwise specified|"
    r"without complications?|unspecified organism|unspecified|other|nos|of|the|and)\b",
    re.IGNORECASE,
)
# Lay words → the tabular list's wording, head first as ICD writes it: "breast cancer" → "malignant neoplasm
# breast" (≈ "Malignant neoplasm of breast"). Queries are scored both as typed and rewritten, best of the two, so
# inclusion terms such as "Lung cancer NOS" still match as typed.
_HEAD_WORDS = {"cancer": "malignant neoplasm", "carcinoma": "malignant neoplasm", "tumor": "neoplasm",
               "tumour": "neoplasm", "heart attack": "myocardial infarction", "mi": "myocardial infarction",
               "bleeding": "hemorrhage", "bleed": "hemorrhage"}
# Plural nouns ("headaches", "ulcers") also scored singular; not "-ss", "-us", "-is" words ("abscess", "colitis").
_PLURAL = re.compile(r"(?<=[a-z]{3})(?<![siu])s\b")
_HEAD = re.compile(r"\b(" + "|".join(map(re.escape, _HEAD_WORDS)) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Code:
    """One coding candidate; `score` is in [0, 1], higher is closer."""

    system: str
    code: str
    display: str
    score: float


def vocabulary_versions() -> dict[str, str]:
    """Versions of the coding vocabularies, to be recorded with every result."""
    return {
        "ICD-10-CM": _icd_release(),
        "simple_icd_10_cm": importlib.metadata.version("simple_icd_10_cm"),
        "drug-named-entity-recognition": importlib.metadata.version("drug-named-entity-recognition"),
    }


@cache
def _icd_release() -> str:
    """The ICD-10-CM release date (ISO), read from the name of the tabular file the package ships."""
    import simple_icd_10_cm

    from_name = re.compile(r"tabular-([A-Za-z]+)-(\d+)-(\d{4})\.xml$")
    for path in sorted(Path(simple_icd_10_cm.__file__).parent.joinpath("data").iterdir()):
        match = from_name.search(path.name)
        if match:
            month, day, year = match.groups()
            return datetime.strptime(f"{month} {day} {year}", "%B %d %Y").date().isoformat()
    return "unknown"


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", _FILLER.sub(" ", text.replace(",", " "))).strip().lower()


def _variants(query: str) -> list[str]:
    """The cleaned query as typed, its singular, and the rewrite with a lay head word in ICD wording moved to
    the front."""
    variants = [_clean(query)]
    variants.append(_PLURAL.sub("", variants[0]))
    match = _HEAD.search(query)
    if match:
        rest = query[:match.start()] + " " + query[match.end():]
        variants.append(_clean(_HEAD_WORDS[match.group(1).lower()] + " " + rest))
    return [v for v in dict.fromkeys(variants) if v]


def _default_leaf(code: str) -> str:
    """The leaf a bare mention of a non-leaf code means: at each level the child ending in 9 (ICD's
    "unspecified" slot), else the one saying "unspecified" most, else the first (7th character A: initial
    encounter)."""
    import simple_icd_10_cm as icd

    while not icd.is_leaf(code):
        code = min(icd.get_children(code), key=lambda c: (not c.endswith("9"),
                                                          -icd.get_description(c).lower().count("unspecified"), c))
    return code


def _encounter_variant(code: str) -> bool:
    """A leaf that only adds a 7th-character encounter/sequela letter to its parent (S72.001A): indexed through
    its parent, which stands for the initial-encounter code; 49 k of the 74 k leaves, mostly repeated text."""
    import simple_icd_10_cm as icd

    return icd.is_extended_subcategory(code) and code[-1].isalpha()


def _rows() -> tuple[list[str], list[str]]:
    """(text, code) rows of the index, in a fixed order."""
    import simple_icd_10_cm as icd

    texts: list[str] = []
    codes: list[str] = []

    def add(text: str, code: str) -> None:
        cleaned = _clean(text)
        if cleaned:
            texts.append(cleaned)
            codes.append(code)

    for code in icd.get_all_codes(with_dots=True):
        if icd.is_chapter_or_block(code) or _encounter_variant(code) or code[0] in _EXTERNAL_CAUSES:
            continue
        if not icd.is_leaf(code) and icd.get_description(code).lower().startswith("other "):
            continue  # "Other asthma" (J45.99) is not what a bare "asthma" means
        target = _default_leaf(code)
        add(icd.get_description(code), target)
        for term in icd.get_inclusion_term(code) + icd.get_includes(code):
            add(term, target)
    for surface, code in _lexicon_rows():  # lets "HTN" or "afib" match inside longer mentions too
        if code[0] not in _EXTERNAL_CAUSES:
            add(surface, code)
    return texts, codes


def _vectorizers() -> tuple:
    from sklearn.feature_extraction.text import HashingVectorizer

    # Hashing keeps the cache free of pickled vocabularies: only arrays go to disk.
    common = dict(n_features=_N_FEATURES, alternate_sign=False, norm=None, lowercase=True)
    return (HashingVectorizer(analyzer="word", ngram_range=(1, 2), **common),
            HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common))


class _Index:
    """Feature-major TF-IDF matrix (features × rows) so a query touches only its own features' postings."""

    def __init__(self, by_feature: sparse.csr_matrix, idf: np.ndarray, row_codes: np.ndarray) -> None:
        self.by_feature = by_feature
        self.idf = idf
        self.row_codes = row_codes
        self.vectorizers = _vectorizers()
        self.answers: dict[tuple[str, int], tuple[Code, ...]] = {}  # notes repeat mentions ("HTN", "chest pain")

    def scores(self, text: str) -> np.ndarray:
        """Cosine of `text` with every row: the query is weighed like the rows (see `_weigh`), block by block."""
        indices, weights = [], []
        for block, vectorizer in enumerate(self.vectorizers):
            counts = vectorizer.transform([text])
            columns = counts.indices + block * _N_FEATURES
            w = (1.0 + np.log(counts.data)) * self.idf[columns]
            norm = np.linalg.norm(w)
            if norm > 0:
                indices.append(columns)
                weights.append(w / norm / np.sqrt(len(self.vectorizers)))
        if not indices:
            return np.zeros(self.by_feature.shape[1], dtype=np.float32)
        postings = self.by_feature[np.concatenate(indices)]
        return np.asarray(postings.T @ np.concatenate(weights).astype(np.float32), dtype=np.float32).ravel()


def _weigh(counts: sparse.csr_matrix, idf: np.ndarray, vectorizers: tuple) -> sparse.csr_matrix:
    """Sublinear tf × idf, each analyzer's block L2-normalised and weighted 1/√2, so rows have unit norm."""
    from sklearn.preprocessing import normalize

    weighted = counts.astype(np.float32)
    weighted.data = 1.0 + np.log(weighted.data)
    weighted = weighted.multiply(idf[np.newaxis, :]).tocsr()
    blocks = [normalize(weighted[:, i * _N_FEATURES:(i + 1) * _N_FEATURES]) for i in range(len(vectorizers))]
    return (sparse.hstack(blocks).tocsr() * np.float32(1 / np.sqrt(len(vectorizers)))).astype(np.float32)


def _build() -> _Index:
    texts, codes = _rows()
    vectorizers = _vectorizers()
    counts = sparse.hstack([v.transform(texts) for v in vectorizers]).tocsr()
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float32)  # scikit-learn's smooth idf
    matrix = _weigh(counts, idf, vectorizers)
    return _Index(matrix.T.tocsr(), idf, np.array(codes))


def _cache_path() -> Path:
    from medui import config

    key = "|".join([str(_INDEX_FORMAT), _FILLER.pattern, *vocabulary_versions().values(), _lexicon_fingerprint()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return config.settings().home / "cache" / "icd10" / f"index-{digest}.npz"


def _load_or_build() -> _Index:
    path = _cache_path()
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as saved:
                matrix = sparse.csr_matrix((saved["data"], saved["indices"], saved["indptr"]),
                                           shape=tuple(saved["shape"]))
                return _Index(matrix, saved["idf"], saved["codes"])
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    index = _build()
    _save(index, path)
    return index


def _save(index: _Index, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".npz", dir=path.parent)
    os.close(fd)
    m = index.by_feature
    np.savez(tmp, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape),
             idf=index.idf, codes=index.row_codes)
    os.replace(tmp, path)  # readers never see half a file


_lock = threading.Lock()
_index: _Index | None = None


def _get_index() -> _Index:
    global _index
    with _lock:
        if _index is None:
            _index = _load_or_build()
        return _index


def prepare_index() -> Path:
    """Build (or load) the ICD-10-CM index and make sure it is cached under the current MEDUI_HOME, also when this
    process already holds it in memory from another home; returns the cache file."""
    global _index
    path = _cache_path()
    with _lock:
        if _index is None:
            _index = _load_or_build()
        elif not path.is_file():
            _save(_index, path)
    return path


def icd10_candidates(text: str, k: int = 5) -> list[Code]:
    """Up to `k` ICD-10-CM leaf codes for a problem mention, best first; [] when nothing scores ABSTAIN_BELOW."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if not _variants(text or ""):
        return []
    index = _get_index()
    key = (text, k)
    if key not in index.answers:
        if len(index.answers) >= _MAX_ANSWERS:
            index.answers.clear()
        index.answers[key] = _candidates(index, *key)
    return list(index.answers[key])


def _candidates(index: _Index, text: str, k: int) -> tuple[Code, ...]:
    import simple_icd_10_cm as icd

    variants = _variants(text)
    found: dict[str, float] = {}
    exact = _lexicon_code(text)
    if exact:
        found[exact] = 1.0
    scores = np.max([index.scores(v) for v in variants], axis=0)
    codes = index.row_codes
    top = min(20 * k, len(scores))  # rows share codes: look deeper than k
    best = np.argpartition(-scores, top - 1)[:top] if top < len(scores) else np.arange(len(scores))
    for row in best[np.lexsort((best, -scores[best]))]:
        if scores[row] < ABSTAIN_BELOW or len(found) >= k:
            break
        found.setdefault(str(codes[row]), round(float(scores[row]), 4))
    # Ties go to the unspecified, then the least specific code: what a bare mention means.
    ranked = sorted(found.items(), key=lambda item: (-item[1], "unspecified" not in icd.get_description(item[0]),
                                                     len(item[0]), item[0]))
    return tuple(Code(SYSTEM, code, icd.get_description(code), score) for code, score in ranked[:k])


def _lexicon_code(text: str) -> str | None:
    """The lexicon's code for an exact synonym or abbreviation ("T2DM", "HTN."), trailing punctuation ignored."""
    problem = lexicon.problem_for(text.strip().strip(".,;:!?()[]\"'").strip())
    return problem.icd10 if problem else None


def _lexicon_rows() -> list[tuple[str, str]]:
    return sorted((surface, p.icd10) for p in lexicon.PROBLEMS.values() for surface in p.surfaces)


def _lexicon_fingerprint() -> str:
    return hashlib.sha256(repr(_lexicon_rows()).encode()).hexdigest()[:16]
