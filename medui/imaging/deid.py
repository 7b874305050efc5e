"""De-identified export (DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile) and the metadata table.

pydicom 3 ships no Annex E action table, so the Basic Profile column is kept here as data. Source: PS3.15 Table
E.1-1 "Application Level Confidentiality Profile Attributes" (2024 editions), Basic Profile column only (no
retain-dates/UIDs/device options). Codes: D dummy, Z empty, X remove, U remap UID; a compound code (X/Z, Z/D,
X/Z/D, X/D) lets the exporter pick. We pick the one that keeps the file valid for its IOD: D over Z over X;
X/Z/U* sequences are kept and their UIDs remapped.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

# fmt: off
ANNEX_E_BASIC: dict[str, str] = {
    "AccessionNumber": "Z", "AcquisitionComments": "X", "AcquisitionContextSequence": "X",
    "AcquisitionDate": "X/Z", "AcquisitionDateTime": "X/Z/D", "AcquisitionDeviceProcessingDescription": "X/D",
    "AcquisitionTime": "X/Z", "ActualHumanPerformersSequence": "X", "AdditionalPatientHistory": "X",
    "AdmissionID": "X", "AdmittingDate": "X", "AdmittingDiagnosesCodeSequence": "X",
    "AdmittingDiagnosesDescription": "X", "AdmittingTime": "X", "AffectedSOPInstanceUID": "X", "Allergies": "X",
    "AuthorObserverSequence": "X", "BranchOfService": "X", "CommentsOnThePerformedProcedureStep": "X",
    "ConcatenationUID": "U", "ConfidentialityConstraintOnPatientDataDescription": "X", "ContentCreatorName": "Z",
    "ContentCreatorIdentificationCodeSequence": "X", "ContentDate": "Z/D", "ContentSequence": "X",
    "ContentTime": "Z/D", "ContextGroupExtensionCreatorUID": "U", "ContrastBolusAgent": "Z/D",
    "ContributionDescription": "X", "CountryOfResidence": "X", "CreatorVersionUID": "U",
    "CurrentPatientLocation": "X", "CustodialOrganizationSequence": "X", "DataSetTrailingPadding": "X",
    "DerivationDescription": "X", "DetectorID": "X/D", "DeviceSerialNumber": "X/Z/D", "DeviceUID": "U",
    "DigitalSignatureUID": "X", "DigitalSignaturesSequence": "X", "DimensionOrganizationUID": "U",
    "DischargeDiagnosisDescription": "X", "DistributionAddress": "X", "DistributionName": "X",
    "DoseReferenceUID": "U", "EthnicGroup": "X", "FailedSOPInstanceUIDList": "U", "FiducialUID": "U",
    "FillerOrderNumberImagingServiceRequest": "Z", "FrameComments": "X", "FrameOfReferenceUID": "U",
    "GeneratorID": "X", "GraphicAnnotationSequence": "D", "HumanPerformerName": "X",
    "HumanPerformerOrganization": "X", "IconImageSequence": "X", "IdentifyingComments": "X", "ImageComments": "X",
    "ImagePresentationComments": "X", "ImagingServiceRequestComments": "X", "Impressions": "X",
    "InstanceCoercionDateTime": "X", "InstanceCreationDate": "X/D", "InstanceCreationTime": "X/Z/D",
    "InstanceCreatorUID": "U", "InstitutionAddress": "X", "InstitutionCodeSequence": "X/Z/D",
    "InstitutionName": "X/Z/D", "InstitutionalDepartmentName": "X", "InsurancePlanIdentification": "X",
    "IntendedRecipientsOfResultsIdentificationSequence": "X", "InterpretationApproverSequence": "X",
    "InterpretationAuthor": "X", "InterpretationDiagnosisDescription": "X", "InterpretationIDIssuer": "X",
    "InterpretationRecorder": "X", "InterpretationText": "X", "InterpretationTranscriber": "X",
    "IrradiationEventUID": "U", "IssuerOfAdmissionID": "X", "IssuerOfPatientID": "X",
    "IssuerOfServiceEpisodeID": "X", "LargePaletteColorLookupTableUID": "U", "LastMenstrualDate": "X", "MAC": "X",
    "MediaStorageSOPInstanceUID": "U", "MedicalAlerts": "X", "MedicalRecordLocator": "X", "MilitaryRank": "X",
    "ModifiedAttributesSequence": "X", "ModifiedImageDescription": "X", "ModifyingDeviceID": "X",
    "NameOfPhysiciansReadingStudy": "X", "NamesOfIntendedRecipientsOfResults": "X", "Occupation": "X",
    "OperatorIdentificationSequence": "X", "OperatorsName": "X/Z/D", "OrderCallbackPhoneNumber": "X",
    "OrderEnteredBy": "X", "OrderEntererLocation": "X", "OriginalAttributesSequence": "X", "OtherPatientIDs": "X",
    "OtherPatientIDsSequence": "X", "OtherPatientNames": "X", "ParticipantSequence": "X", "PatientAddress": "X",
    "PatientAge": "X", "PatientBirthDate": "Z", "PatientBirthName": "X", "PatientBirthTime": "X",
    "PatientComments": "X", "PatientID": "Z", "PatientInsurancePlanCodeSequence": "X",
    "PatientMotherBirthName": "X", "PatientName": "Z", "PatientPrimaryLanguageCodeSequence": "X",
    "PatientReligiousPreference": "X", "PatientSex": "Z", "PatientSexNeutered": "X/Z", "PatientSize": "X",
    "PatientState": "X", "PatientTelephoneNumbers": "X", "PatientTransportArrangements": "X", "PatientWeight": "X",
    "PerformedLocation": "X", "PerformedProcedureStepDescription": "X", "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X", "PerformedProcedureStepID": "X", "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X", "PerformedStationName": "X/Z",
    "PerformingPhysicianIdentificationSequence": "X", "PerformingPhysicianName": "X", "PersonAddress": "X",
    "PersonIdentificationCodeSequence": "D", "PersonName": "D", "PersonTelephoneNumbers": "X",
    "PhysicianApprovingInterpretation": "X", "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X", "PhysiciansReadingStudyIdentificationSequence": "X",
    "PlacerOrderNumberImagingServiceRequest": "Z", "PreMedication": "X", "PregnancyStatus": "X",
    "ProtocolName": "X/D", "ReasonForStudy": "X", "ReasonForTheImagingServiceRequest": "X",
    "ReferencedDigitalSignatureSequence": "X", "ReferencedFrameOfReferenceUID": "U",
    "ReferencedImageSequence": "X/Z/U*", "ReferencedPatientAliasSequence": "X", "ReferencedPatientSequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X/Z/D", "ReferencedSOPInstanceMACSequence": "X",
    "ReferencedSOPInstanceUID": "U", "ReferencedSOPInstanceUIDInFile": "U", "ReferencedStudySequence": "X/Z",
    "ReferringPhysicianAddress": "X", "ReferringPhysicianIdentificationSequence": "X",
    "ReferringPhysicianName": "Z", "ReferringPhysicianTelephoneNumbers": "X", "RegionOfResidence": "X",
    "RelatedFrameOfReferenceUID": "U", "RequestAttributesSequence": "X", "RequestedContrastAgent": "X",
    "RequestedProcedureComments": "X", "RequestedProcedureDescription": "X/Z", "RequestedProcedureID": "X",
    "RequestedProcedureLocation": "X", "RequestedSOPInstanceUID": "U", "RequestingPhysician": "X",
    "RequestingService": "X", "ResponsibleOrganization": "X", "ResponsiblePerson": "X", "ResultsComments": "X",
    "ResultsDistributionListSequence": "X", "ResultsIDIssuer": "X", "ReviewerName": "X/Z",
    "ScheduledHumanPerformersSequence": "X", "ScheduledPatientInstitutionResidence": "X",
    "ScheduledPerformingPhysicianIdentificationSequence": "X", "ScheduledPerformingPhysicianName": "X",
    "SeriesDate": "X/D", "SeriesDescription": "X", "SeriesInstanceUID": "U", "SeriesTime": "X/D",
    "ServiceEpisodeDescription": "X", "ServiceEpisodeID": "X", "SmokingStatus": "X", "SOPInstanceUID": "U",
    "SourceImageSequence": "X/Z/U*", "SpecialNeeds": "X", "StationName": "X/Z/D", "StorageMediaFileSetUID": "U",
    "StudyComments": "X", "StudyDate": "Z", "StudyDescription": "X", "StudyID": "Z", "StudyIDIssuer": "X",
    "StudyInstanceUID": "U", "StudyTime": "Z", "SynchronizationFrameOfReferenceUID": "U",
    "TemplateExtensionCreatorUID": "U", "TemplateExtensionOrganizationUID": "U", "TextComments": "X",
    "TextString": "X", "TimezoneOffsetFromUTC": "X", "TopicAuthor": "X", "TopicKeywords": "X", "TopicSubject": "X",
    "TopicTitle": "X", "TransactionUID": "U", "UID": "U", "VerifyingObserverIdentificationCodeSequence": "Z",
    "VerifyingObserverName": "D", "VerifyingObserverSequence": "D", "VerifyingOrganization": "X",
    "VisitComments": "X",
}
# fmt: on
ACTIONS: dict[int, str] = {}
for _keyword, _code in ANNEX_E_BASIC.items():
    _tag = tag_for_keyword(_keyword)
    assert _tag is not None, _keyword  # a typo here would silently leave an identifier in the export
    ACTIONS[_tag] = "U" if "U" in _code else "D" if "D" in _code else "Z" if "Z" in _code else "X"

DUMMY_BY_VR = {"PN": "ANONYMIZED", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "LT": "ANONYMIZED", "ST": "ANONYMIZED",
               "UT": "ANONYMIZED", "CS": "ANONYMIZED", "DA": "19000101", "TM": "000000", "DT": "19000101000000",
               "AS": "000Y", "DS": "0", "IS": "0"}
METHOD = "PS3.15 Annex E Basic Application Confidentiality Profile"  # LO: at most 64 characters
BURN_IN_MODALITIES = ("US", "SC", "XA", "ES")  # these usually carry text burned into the pixels
PHI_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "OtherPatientIDs",
                "AccessionNumber", "InstitutionName", "ReferringPhysicianName", "StudyDate", "StudyID")
TABLE_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "AccessionNumber",
                  "StudyDate", "StudyDescription", "InstitutionName", "ReferringPhysicianName", "Modality",
                  "SeriesDescription", "SeriesNumber", "InstanceNumber", "Manufacturer", "BodyPartExamined",
                  "Rows", "Columns", "NumberOfFrames", "PixelSpacing", "SliceThickness", "PhotometricInterpretation",
                  "BurnedInAnnotation")
MASK = "***"


@dataclass
class Deidentifier:
    """One export: a fresh secret key, so a UID maps the same way across the export and differently in the next."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    removed: int = 0

    def uid(self, original: str) -> str:
        """A keyed hash of the UID as a 2.25 UID (128-bit decimal; at most 44 characters, under the 64 limit)."""
        digest = hmac.new(self.key, original.strip().encode(), hashlib.sha256).digest()
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    def apply(self, ds: Dataset) -> Dataset:
        """A de-identified copy of ds (pixel data untouched: see burned_in_warning)."""
        out = copy.deepcopy(ds)  # Dataset.copy() is shallow: editing its elements would edit the caller's
        out.remove_private_tags()  # Basic Profile: private attributes are removed unless retained by an option
        out.preamble = b"\0" * 128  # PS3.10 lets the preamble hold anything (TIFF tags with identifiers, a program)
        self._clean(out)
        if getattr(out, "file_meta", None) is not None and "MediaStorageSOPInstanceUID" in out.file_meta:
            out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = METHOD
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
        code.CodeMeaning = "Basic Application Confidentiality Profile"
        out.DeidentificationMethodCodeSequence = Sequence([code])
        out.LongitudinalTemporalInformationModified = "REMOVED"
        return out

    def _clean(self, ds: Dataset) -> None:
        for element in list(ds):
            tag, action = element.tag, ACTIONS.get(int(element.tag))
            if _is_curve_or_overlay_comment(tag):
                action = "X"  # (50xx,xxxx) curves and (60xx,4000) overlay comments are X in Table E.1-1
            if action == "X":
                del ds[tag]
                self.removed += 1
            elif action == "Z":
                element.value = Sequence() if element.VR == "SQ" else None
            elif action == "D":
                element.value = Sequence() if element.VR == "SQ" else DUMMY_BY_VR.get(element.VR)
            elif action == "U" and element.VR == "UI" and element.value:
                values = element.value if element.VM > 1 else [element.value]
                mapped = [self.uid(str(v)) for v in values]
                element.value = mapped if element.VM > 1 else mapped[0]
            if tag in ds and ds[tag].VR == "SQ":
                for item in ds[tag].value or []:
                    self._clean(item)  # the profile applies inside sequences too


    def export(self, datasets: list[Dataset], dest: Path) -> list[Path]:
        """Write de-identified copies into dest, named by their new SOP Instance UID."""
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for ds in datasets:
            out = self.apply(ds)
            path = dest / f"{out.get('SOPInstanceUID') or self.uid(str(len(written)))}.dcm"
            out.save_as(path, enforce_file_format=True)
            written.append(path)
        return written


def _is_curve_or_overlay_comment(tag: BaseTag) -> bool:
    group = tag.group
    return 0x5000 <= group <= 0x50FF and group % 2 == 0 or (0x6000 <= group <= 0x60FF and tag.element == 0x4000)


def burned_in_warning(ds: Dataset) -> str | None:
    """Why the pixels themselves may show identifying text, or None; de-identification does not touch pixels."""
    flag = str(ds.get("BurnedInAnnotation") or "").upper()
    modality = str(ds.get("Modality") or "")
    if flag == "YES":
        return "Burned In Annotation is YES: the image itself shows text that may identify the patient."
    if not flag and modality in BURN_IN_MODALITIES:
        return (f"No Burned In Annotation flag on a {modality} image, a modality that usually burns text into the "
                "pixels: check the image before sharing it.")
    return None


def metadata_table(ds: Dataset, reveal: bool = False) -> list[dict[str, Any]]:
    """Selected header fields; patient-identifying ones masked unless reveal (use reveal_metadata for that)."""
    rows = []
    for keyword in TABLE_KEYWORDS:
        if keyword in ds:
            value = ds.get(keyword)
            phi = keyword in PHI_KEYWORDS
            shown = MASK if phi and not reveal and value not in (None, "") else str(value if value is not None else "")
            rows.append({"field": keyword, "value": shown, "identifying": phi})
    return rows


def reveal_metadata(ds: Dataset, actor: str, reason: str = "") -> list[dict[str, Any]]:
    """The unmasked table, audit-logged as phi_reveal (identifiers only: which instance, never the values)."""
    from medui import audit

    audit.record(actor, "phi_reveal", "success", patient=str(ds.get("PatientID") or "") or None,
                 sop_instance_uid=str(ds.get("SOPInstanceUID") or ""), fields=list(PHI_KEYWORDS), reason=reason[:200])
    return metadata_table(ds, reveal=True)
