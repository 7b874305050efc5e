"""Grouping instances into Study → Series → Instance, and ordering slices along the patient axis."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from medui.imaging.decode import frame_count


@dataclass
class Instance:
    source: str
    sop_instance_uid: str
    instance_number: int | None
    position: float | None  # Image Position (Patient) projected on the slice normal, in mm
    frames: int
    dataset: Dataset = field(repr=False)


@dataclass
class Series:
    uid: str
    modality: str
    description: str
    instances: list[Instance] = field(default_factory=list)
    ordered_by: str = "instance number"

    def slices(self) -> list[tuple[Instance, int]]:
        """Every displayable frame in order: (instance, frame index)."""
        return [(inst, k) for inst in self.instances for k in range(inst.frames)]


@dataclass
class Study:
    uid: str
    description: str
    date: str
    series: list[Series] = field(default_factory=list)


def slice_position(ds: Dataset) -> float | None:
    """Distance along the normal of the slice plane (row × column direction cosines); None without geometry."""
    try:
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=float)
        position = np.array([float(v) for v in ds.ImagePositionPatient], dtype=float)
    except (AttributeError, TypeError, ValueError):
        return None
    if orientation.shape != (6,) or position.shape != (3,):
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    return float(np.dot(position, normal)) if np.linalg.norm(normal) > 0.5 else None


def _number(ds: Dataset) -> int | None:
    try:
        return int(ds.InstanceNumber)
    except (AttributeError, TypeError, ValueError):
        return None


def _order(series: Series) -> None:
    positions = [i.position for i in series.instances]
    # Positions only order a series when every slice has one and they differ (not a time series at one place).
    if all(p is not None for p in positions) and len(set(positions)) == len(positions):
        series.instances.sort(key=lambda i: (i.position, i.instance_number or 0))
        series.ordered_by = "image position"
    else:
        series.instances.sort(key=lambda i: (i.instance_number is None, i.instance_number or 0, i.source))
        series.ordered_by = "instance number"


def organise(items: Iterable[tuple[str, Dataset]]) -> list[Study]:
    """(source, dataset) pairs → studies, each with its series, each with its instances in slice order."""
    studies: dict[str, Study] = {}
    series_by_uid: dict[tuple[str, str], Series] = {}
    for source, ds in items:
        study_uid = str(ds.get("StudyInstanceUID") or "unknown")
        study = studies.setdefault(study_uid, Study(study_uid, str(ds.get("StudyDescription") or ""),
                                                    str(ds.get("StudyDate") or "")))
        series_uid = str(ds.get("SeriesInstanceUID") or "unknown")
        key = (study_uid, series_uid)
        if key not in series_by_uid:
            series_by_uid[key] = Series(series_uid, str(ds.get("Modality") or ""), str(ds.get("SeriesDescription") or ""))
            study.series.append(series_by_uid[key])
        series_by_uid[key].instances.append(Instance(source, str(ds.get("SOPInstanceUID") or ""), _number(ds),
                                                     slice_position(ds), frame_count(ds), ds))
    for series in series_by_uid.values():
        _order(series)
    for study in studies.values():
        study.series.sort(key=lambda s: (s.instances[0].dataset.get("SeriesNumber") or 0, s.uid))
    return list(studies.values())
