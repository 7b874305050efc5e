"""One-click sample notes for the Notes page: a short HPI, a discharge summary and a small batch, all written for
MedUI (no real patient) and kept out of training and the development set."""

from __future__ import annotations

import csv
import io

from medui.samples import Sample, register

ORIGIN = "synthetic, written for MedUI"
SHORT = "Pt denies chest pain. Hx of T2DM on metformin 500 mg PO BID. Mother had breast cancer."
DISCHARGE = """DISCHARGE SUMMARY

History of Present Illness:
68 y/o M with h/o CHF and COPD presented with 3 days of worsening SOB and productive cough. Denies fever or
hemoptysis. No chest pain. Possible community-acquired pneumonia on admission.

Past Medical History:
1. Congestive heart failure
2. COPD
3. Hypertension

Medications on discharge:
- Furosemide 40 mg PO daily
- Lisinopril 10 mg by mouth once daily
- Albuterol 2 puffs inhaled q4h PRN wheezing

Family History:
Father had MI at 55. Sister with asthma.

Assessment/Plan:
CXR showed RLL infiltrate; treated for pneumonia with ceftriaxone 1 g IV q24h, switched to oral. Echocardiogram
unchanged. Return if shortness of breath or fever develops.
"""
BATCH = [
    ("ward-3 bed 1", "bed-1", SHORT),
    ("ward-3 bed 2", "bed-2", "Rule out pneumonia. No evidence of DVT. Started warfarin 5 mg PO daily."),
    ("ward-3 bed 3", "bed-3", "Known asthma, on salbutamol inhaler as needed. Denies wheeze today. CBC normal."),
]


def _batch_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["source", "patient", "text"])
    writer.writerows(BATCH)
    return out.getvalue().encode("utf-8")


register(Sample("notes", "short_hpi", "Short HPI (denied, present and family problems, one medication)",
                "The three-sentence note of the acceptance check.", "short-hpi.txt", ORIGIN,
                lambda: SHORT.encode("utf-8")))
register(Sample("notes", "discharge", "Discharge summary with sections", "HPI, PMH, medications, family history "
                "and plan: negation, uncertainty, family and hypothetical cues.", "discharge-summary.txt", ORIGIN,
                lambda: DISCHARGE.encode("utf-8")))
register(Sample("notes", "batch", "Batch of three notes (CSV)", "One note per row with a patient column, for the "
                "batch view.", "ward-3.csv", ORIGIN, _batch_csv))
