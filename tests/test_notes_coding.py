"""ICD-10-CM candidates over the full code set of simple_icd_10_cm, with the lexicon's synonyms and abstention."""

from __future__ import annotations

import pytest
import simple_icd_10_cm as icd

from medui.notes import coding
from medui.notes.coding import ABSTAIN_BELOW, SYSTEM, icd10_candidates, vocabulary_versions

# Common problem phrasings (written for this test, not taken from the development set) → ICD-10-CM category.
COMMON = [
    ("type 2 diabetes mellitus", "E11"), ("T2DM", "E11"), ("hypertension", "I10"), ("breast cancer", "C50"),
    ("high blood pressure", "I10"), ("essential HTN", "I10"), ("uncontrolled type two diabetes", "E11"),
    ("pneumonia", "J18"), ("community acquired pneumonia", "J18"), ("acute exacerbation of COPD", "J44"),
    ("chronic obstructive lung disease", "J44"), ("asthma exacerbation", "J45"), ("congestive heart failure", "I50"),
    ("acute kidney injury", "N17"), ("chronic kidney disease stage 3", "N18"), ("urinary tract infection", "N39"),
    ("atrial fibrillation with RVR", "I48"), ("paroxysmal afib", "I48"), ("deep vein thrombosis of left leg", "I82"),
    ("pulmonary embolism", "I26"), ("major depressive disorder", "F32"), ("generalized anxiety disorder", "F41"),
    ("migraine without aura", "G43"), ("osteoarthritis of the knee", "M17"), ("low back pain", "M54"),
    ("gastroesophageal reflux disease", "K21"), ("iron deficiency anemia", "D50"), ("hypothyroidism", "E03"),
    ("hyperlipidemia", "E78"), ("obesity", "E66"), ("cellulitis of right lower leg", "L03"), ("sepsis", "A41"),
    ("acute appendicitis", "K35"), ("lung cancer", "C34"), ("prostate cancer", "C61"), ("colon cancer", "C18"),
    ("ischemic stroke", "I63"), ("chest pain", "R07"), ("shortness of breath", "R06"), ("headache", "R51"),
    ("abdominal pain", "R10"), ("nausea and vomiting", "R11"), ("fever", "R50"), ("syncope", "R55"),
    ("acute myocardial infarction", "I21"), ("alcohol use disorder", "F10"), ("rheumatoid arthritis", "M06"),
    ("gout flare", "M10"), ("dementia", "F03"), ("hip fracture", "S72"),
]
# Phrasings the lexicon does not list verbatim: the TF-IDF ranking alone must place them.
PARAPHRASES = [
    ("right lower lobe pneumonia", "J18"), ("stage 4 chronic kidney disease", "N18"),
    ("acute on chronic diastolic heart failure", "I50"), ("type 2 diabetes with diabetic neuropathy", "E11"),
    ("diabetic foot ulcer", "E11"), ("essential hypertension, poorly controlled", "I10"),
    ("metastatic breast carcinoma", "C50"), ("adenocarcinoma of the prostate", "C61"),
    ("small cell lung cancer", "C34"), ("acute cystitis", "N30"), ("pyelonephritis", "N10"),
    ("acute pancreatitis", "K85"), ("cholecystitis", "K81"), ("cirrhosis of liver", "K74"), ("upper GI bleed", "K92"),
    ("iron deficiency anaemia", "D50"), ("sickle cell crisis", "D57"), ("hypokalaemia", "E87"),
    ("diabetic ketoacidosis", "E11"), ("left ventricular hypertrophy", "I51"), ("sinus bradycardia", "R00"),
    ("aortic stenosis", "I35"), ("peripheral arterial disease", "I73"), ("abdominal aortic aneurysm", "I71"),
    ("transient ischemic attack", "G45"), ("seizure disorder", "G40"), ("parkinson disease", "G20"),
    ("multiple sclerosis", "G35"), ("bipolar disorder", "F31"), ("schizophrenia", "F20"), ("opioid dependence", "F11"),
    ("tobacco use", "Z72"), ("allergic rhinitis", "J30"), ("acute sinusitis", "J01"),
    ("streptococcal pharyngitis", "J02"), ("influenza", "J11"), ("covid-19 infection", "U07"),
    ("herpes zoster", "B02"), ("psoriasis", "L40"), ("eczema", "L30"), ("osteoporosis", "M81"),
    ("carpal tunnel syndrome", "G56"), ("rotator cuff tear", "M75"), ("benign prostatic hyperplasia", "N40"),
    ("kidney stones", "N20"), ("vitamin d deficiency", "E55"), ("anemia of chronic disease", "D63"),
    ("thrombocytopenia", "D69"), ("hyponatremia", "E87"), ("hypothyroid", "E03"),
]


def top1_category_accuracy(phrases: list[tuple[str, str]]) -> float:
    hits = 0
    for phrase, category in phrases:
        found = icd10_candidates(phrase, k=1)
        hits += bool(found) and found[0].code.replace(".", "").startswith(category)
    return hits / len(phrases)


def test_acceptance_codes():
    diabetes = icd10_candidates("type 2 diabetes mellitus")
    assert diabetes[0].code.startswith("E11.") and diabetes[0].system == SYSTEM == "ICD-10-CM"
    assert icd10_candidates("T2DM")[0].code == "E11.9"
    assert icd10_candidates("hypertension")[0].code == "I10"
    assert icd10_candidates("breast cancer")[0].code.startswith("C50.")
    assert icd10_candidates("HTN.")[0].code == "I10"  # the lexicon's abbreviation, punctuation ignored


def test_candidates_are_ranked_valid_leaf_codes():
    found = icd10_candidates("atrial fibrillation", k=5)
    assert 1 < len(found) <= 5
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    for candidate in found:
        assert icd.is_leaf(candidate.code)
        assert candidate.display == icd.get_description(candidate.code)
        assert ABSTAIN_BELOW <= candidate.score <= 1.0
    assert found[0].code == "I48.91"
    assert len({c.code for c in found}) == len(found)


@pytest.mark.parametrize("text", ["xqzvblorf", "qwerty uiop", "asdf", "", "   ", "the", "!!!"])
def test_gibberish_abstains(text):
    assert icd10_candidates(text) == []


def test_misspelling_still_codes():
    assert icd10_candidates("hypertensoin")[0].code == "I10"


def test_full_code_set_is_reachable():
    # codes no lexicon entry names, found from the package's own descriptions and inclusion terms
    assert icd10_candidates("Cholera due to Vibrio cholerae 01, biovar eltor")[0].code == "A00.1"
    assert icd10_candidates("diabetes NOS")[0].code == "E11.9"
    assert icd10_candidates("fracture of neck of right femur")[0].code.startswith("S72.001")


def test_repeated_mentions_are_answered_alike():
    first = icd10_candidates("community acquired pneumonia")
    first.clear()  # callers get their own list
    assert icd10_candidates("community acquired pneumonia")[0].code.startswith("J18")


def test_plurals_and_external_causes():
    assert icd10_candidates("recurrent headaches")[0].code.startswith("R51")
    assert icd10_candidates("heavy bleeding")[0].code == "R58"
    # a problem is never coded as its external cause (chapter 20, V00-Y99: "Unspecified fall", "Overdose of
    # radiation given during therapy")
    for mention in ("repeated falls", "overdose", "car accidents"):
        assert all(c.code[0] not in "VWXY" for c in icd10_candidates(mention, k=10)), mention


def test_bad_k_is_refused():
    with pytest.raises(ValueError, match="k must be positive"):
        icd10_candidates("asthma", k=0)


@pytest.fixture
def small_index(monkeypatch):
    """A three-row index in this test's MEDUI_HOME instead of the process-wide full one (built in seconds)."""
    monkeypatch.setattr(coding, "_rows", lambda: (["asthma", "chest pain", "heart failure"],
                                                  ["J45.909", "R07.9", "I50.9"]))
    monkeypatch.setattr(coding, "_index", None)


def test_index_is_cached_on_disk_and_reloaded(small_index, medui_home, monkeypatch):
    assert icd10_candidates("chest pains")[0].code == "R07.9"
    cached = list((medui_home / "cache" / "icd10").glob("index-*.npz"))
    assert len(cached) == 1
    monkeypatch.setattr(coding, "_index", None)
    monkeypatch.setattr(coding, "_build", lambda: pytest.fail("rebuilt although a cache exists"))
    assert icd10_candidates("chest pains")[0].code == "R07.9"


def test_damaged_cache_is_rebuilt(small_index, medui_home, monkeypatch):
    icd10_candidates("asthma")
    (cached,) = (medui_home / "cache" / "icd10").glob("index-*.npz")
    cached.write_bytes(b"not an npz")
    monkeypatch.setattr(coding, "_index", None)
    assert icd10_candidates("heart failure")[0].code == "I50.9"


def test_vocabulary_versions():
    versions = vocabulary_versions()
    assert versions["ICD-10-CM"] == "2026-04-01"
    assert versions["simple_icd_10_cm"] and versions["drug-named-entity-recognition"]


def test_category_accuracy_on_common_phrasings():
    assert top1_category_accuracy(COMMON) >= 0.9


def test_category_accuracy_of_the_ranking_alone(monkeypatch):
    monkeypatch.setattr(coding, "_lexicon_code", lambda text: None)
    monkeypatch.setattr(coding._get_index(), "answers", {})  # answers remembered with the exact lookup on
    assert top1_category_accuracy(PARAPHRASES) >= 0.85
