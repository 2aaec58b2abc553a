"""De-identification, DICOM PS3.15 Basic Application Level Confidentiality Profile.

Ingest keeps only what later stages need (a keep-list: Modality, Manufacturer, pixel spacing) and
a pseudonymous patient key (HMAC-SHA256 of PatientID under a secret salt), so no identifying value
reaches any output. :func:`basic_profile` cleans a whole dataset for code that writes DICOM.
"""
from __future__ import annotations

import hashlib
import hmac

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

# Attributes of the Basic Profile (PS3.15 Table E.1-1) that identify a person, place or time,
# by keyword. Removed (X) or emptied (Z/D) by :func:`basic_profile`.
BASIC_PROFILE_REMOVE = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientSex", "PatientAge",
    "PatientSize", "PatientWeight", "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
    "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence", "PatientBirthName",
    "MilitaryRank", "BranchOfService", "MedicalRecordLocator", "EthnicGroup", "Occupation",
    "AdditionalPatientHistory", "PatientComments", "PatientReligiousPreference", "ResponsiblePerson",
    "ResponsibleOrganization", "CountryOfResidence", "RegionOfResidence", "IssuerOfPatientID",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence", "PhysiciansOfRecord", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "RequestingPhysician", "ScheduledPerformingPhysicianName",
    "StationName", "DeviceSerialNumber", "AccessionNumber", "StudyID", "StudyDate", "SeriesDate",
    "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime",
    "AcquisitionDateTime", "InstanceCreationDate", "InstanceCreationTime", "StudyDescription",
    "SeriesDescription", "ImageComments", "RequestAttributesSequence", "RequestedProcedureID",
    "PerformedProcedureStepID", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "PerformedProcedureStepDescription", "ScheduledProcedureStepID", "AdmissionID", "AdmittingDiagnosesDescription",
    "DerivationDescription", "FrameComments", "ProtocolName", "ReferencedPatientSequence",
    "ReferencedStudySequence", "ReferencedPerformedProcedureStepSequence", "SourceImageSequence",
    "ReferencedImageSequence", "PatientState", "MedicalAlerts", "Allergies", "SmokingStatus",
    "PregnancyStatus", "LastMenstrualDate", "SpecialNeeds", "PatientInsurancePlanCodeSequence",
    "InterpretationAuthor", "InterpretationRecorder", "InterpretationTranscriber", "TextComments",
)
UID_REPLACE = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
               "MediaStorageSOPInstanceUID")

KEEP_AT_INGEST = {"modality": "Modality", "manufacturer": "Manufacturer"}


def patient_key(ds: Dataset, salt: str) -> str:
    """A pseudonymous key for grouping a patient's images: HMAC-SHA256(salt, PatientID)[:16]."""
    pid = str(ds.get("PatientID", "") or "").strip()
    if not pid:
        return ""
    return hmac.new(salt.encode("utf-8"), pid.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def _clean_text(value, limit: int = 64) -> str:
    text = " ".join(str(value).split())
    return "".join(ch for ch in text if ch.isprintable() and ch not in ",\"")[:limit]


def kept_metadata(ds: Dataset) -> dict[str, str]:
    """The keep-list that leaves ingest: modality, manufacturer, pixel spacing (mm, 'row\\col')."""
    out = {k: _clean_text(ds.get(kw, "") or "") for k, kw in KEEP_AT_INGEST.items()}
    spacing = ds.get("PixelSpacing", None) or ds.get("ImagerPixelSpacing", None)
    try:
        out["pixel_spacing"] = "\\".join(f"{float(v):.6g}" for v in spacing) if spacing else ""
    except (TypeError, ValueError):
        out["pixel_spacing"] = ""
    return out


def basic_profile(ds: Dataset) -> Dataset:
    """Apply the Basic Profile to a copy of ``ds``: identifying attributes removed, UIDs replaced,
    private tags removed, and the dataset marked PatientIdentityRemoved."""
    import copy

    out = copy.deepcopy(ds)
    out.remove_private_tags()

    def strip(dataset: Dataset) -> None:
        for kw in BASIC_PROFILE_REMOVE:
            if kw in dataset:
                delattr(dataset, kw)
        for kw in UID_REPLACE:
            if kw in dataset:
                setattr(dataset, kw, generate_uid())
        for elem in list(dataset):
            if elem.VR == "SQ":
                for item in elem.value:
                    strip(item)
            elif elem.VR == "PN":  # any person name the list above missed
                del dataset[elem.tag]
            elif elem.VR in ("DA", "DT", "TM"):  # every date and time
                del dataset[elem.tag]

    strip(out)
    if hasattr(out, "file_meta") and "MediaStorageSOPInstanceUID" in out.file_meta:
        out.file_meta.MediaStorageSOPInstanceUID = out.get("SOPInstanceUID", generate_uid())
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = "DICOM PS3.15 Basic Profile (dentsynth)"
    return out
