"""De-identification (PS3.15 Annex E Basic Profile), burned-in flags and the masked metadata table."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medui import audit
from medui.imaging import ANNEX_E_BASIC, Deidentifier, burned_in_warning, metadata_table, reveal_metadata


def tf(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not available offline")
    return path


@pytest.fixture
def series() -> list[Dataset]:
    base = pydicom.dcmread(tf("CT_small.dcm"))
    base.OtherPatientIDs, base.InstitutionName, base.ReferringPhysicianName = "OTHER-1", "St Elsewhere", "Dr^Who"
    base.PatientBirthDate, base.PerformingPhysicianName = "19600101", "Dr^No"
    base.add_new(0x00091010, "LO", "private clue")
    base.private_block(0x0011, "ACME", create=True).add_new(0x01, "LO", "secret")
    slices = []
    for k in range(3):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID = f"1.2.3.4.{k}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, "1.2.3.4.0"
        ds.ReferencedImageSequence = Sequence([ref])
        slices.append(ds)
    return slices


def test_identifiers_dates_and_private_tags_are_gone(series):
    original = copy.deepcopy(series[0])
    out = Deidentifier().apply(series[0])
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "AccessionNumber",
                    "ReferringPhysicianName"):
        assert out.get(keyword) in (None, ""), keyword  # Z: present but empty
    for keyword in ("OtherPatientIDs", "InstitutionName", "PerformingPhysicianName"):
        assert out.get(keyword) in (None, "", "ANONYMIZED"), keyword
    assert "OtherPatientIDs" not in out and "PerformingPhysicianName" not in out  # X: removed
    assert not any(element.tag.is_private for element in out.iterall())
    assert out.PatientIdentityRemoved == "YES" and "Annex E" in out.DeidentificationMethod
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert str(out.get("ContentDate") or "") in ("", "19000101")
    assert out.PixelData == original.PixelData
    assert series[0].PatientName == original.PatientName and series[0].SOPInstanceUID == "1.2.3.4.0"  # a copy


def test_uids_are_remapped_consistently_within_one_export(series, tmp_path):
    deid = Deidentifier()
    paths = deid.export(series, tmp_path / "out")
    back = [pydicom.dcmread(p) for p in paths]  # pydicom re-reads every output
    assert len({ds.StudyInstanceUID for ds in back}) == 1 and len({ds.SeriesInstanceUID for ds in back}) == 1
    assert len({ds.SOPInstanceUID for ds in back}) == 3
    assert back[0].StudyInstanceUID != series[0].StudyInstanceUID
    for ds in back:
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID):
            assert uid.startswith("2.25.") and len(uid) <= 64 and uid.is_valid
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == series[0].SOPClassUID  # class UIDs are not identifiers
        # The reference to slice 0 inside a sequence follows slice 0's new UID.
        assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == back[0].SOPInstanceUID
        assert ds.PatientName == "" and np.array_equal(ds.pixel_array, series[0].pixel_array)
    assert Deidentifier().uid(series[0].StudyInstanceUID) != back[0].StudyInstanceUID  # a new export, a new key


def test_the_action_table_names_real_attributes_with_known_codes():
    assert {"PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "AccessionNumber", "InstitutionName",
            "ReferringPhysicianName", "StudyDate", "StudyInstanceUID"} <= set(ANNEX_E_BASIC)
    assert set(ANNEX_E_BASIC.values()) <= {"D", "Z", "X", "U", "X/Z", "Z/D", "X/D", "X/Z/D", "X/Z/U*"}


def test_burned_in_annotation_is_flagged():
    ds = pydicom.dcmread(tf("CT_small.dcm"))
    assert burned_in_warning(ds) is None
    ds.BurnedInAnnotation = "YES"
    assert "Burned In Annotation is YES" in burned_in_warning(ds)
    us = pydicom.dcmread(tf("US1_UNCR.dcm"))
    if "BurnedInAnnotation" in us:
        del us.BurnedInAnnotation
    assert "usually burns text" in burned_in_warning(us)
    us.BurnedInAnnotation = "NO"
    assert burned_in_warning(us) is None


def test_metadata_is_masked_until_revealed_and_the_reveal_is_audited():
    ds = pydicom.dcmread(tf("CT_small.dcm"))
    masked = {r["field"]: r["value"] for r in metadata_table(ds)}
    assert masked["PatientName"] == masked["PatientID"] == "***" and masked["Modality"] == "CT"
    shown = {r["field"]: r["value"] for r in reveal_metadata(ds, "dr.a", reason="tumour board")}
    assert shown["PatientName"] == str(ds.PatientName)
    event = audit.events(action="phi_reveal")[0]
    assert event["actor"] == "dr.a" and event["detail"]["sop_instance_uid"] == ds.SOPInstanceUID
    assert str(ds.PatientName) not in str(event["detail"])
