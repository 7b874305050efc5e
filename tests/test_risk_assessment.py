"""The one-form assessment across calculators, and the `risk` CLI."""

import json

from medui import records
from medui.risk.assessment import SAMPLE_PATIENT, assess, form_fields, inputs_for, summary_markdown


def test_the_form_asks_each_input_once_with_the_widest_range():
    fields = {f.name: f for f in form_fields()}
    assert len(fields) == len(form_fields())
    assert "bp_medication" not in fields and "stroke" not in fields  # asked as bp_treated and stroke_tia
    assert (fields["age"].low, fields["age"].high) == (18, 120)  # pce alone would allow only 40-79


def test_aliases_feed_each_calculator_its_own_names():
    values = dict(SAMPLE_PATIENT)
    assert inputs_for("findrisc", values)["bp_medication"] is True
    assert inputs_for("hasbled", values)["stroke"] is False


def test_every_calculator_runs_on_the_sample_patient():
    results = assess(dict(SAMPLE_PATIENT))
    assert all("refused" not in r for r in results.values()), results
    assert results["cha2ds2vasc"]["points"] == 2  # hypertension 1 + diabetes 1; a man of 62 scores no age/sex point


def test_a_score_outside_its_range_says_why_and_the_others_still_run():
    results = assess({**SAMPLE_PATIENT, "age": 35})
    assert results["pce"]["refused"] == "age 35 years is outside the validated range 40–79 years for pce"
    assert "refused" not in results["cha2ds2vasc"]


def test_summary_names_every_score_and_its_source():
    results = assess(dict(SAMPLE_PATIENT))
    text = summary_markdown("bed-4", results, None)
    assert text.startswith("# Risk assessment — patient bed-4")
    assert "Goff" in text and "FINDRISC" in text.upper()


def test_cli_prints_outputs_with_score_inputs_and_citation(cli):
    code, out, _ = cli("risk", "pce", "--json", "--input", json.dumps(
        {"age": 55, "sex": "female", "race": "white", "total_cholesterol": 213, "hdl": 50, "systolic_bp": 120,
         "bp_treated": False, "smoker": False, "diabetes": False}))
    result = json.loads(out)
    assert code == 0
    assert result["risk_10y_percent"] == 2.1  # Goff 2013, Appendix 7 Table A, white woman
    assert result["score"] == "pce" and result["inputs"]["age"] == 55 and "Goff" in result["citation"]


def test_cli_reads_a_file_and_saves_for_a_patient(cli, tmp_path):
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(inputs_for("findrisc", SAMPLE_PATIENT)))
    code, out, _ = cli("risk", "findrisc", "--input", f"@{path}", "--patient", "bed-4")
    assert code == 0 and "points:" in out
    assert records.latest_for_patient("bed-4", "risk").result["scores"]["findrisc"]["points"] > 0


def test_cli_bad_input_is_one_line_naming_the_field(cli, tmp_path):
    for argv, message in [
        (["risk", "pce", "--input", json.dumps({**SAMPLE_PATIENT, "age": 90})], "age 90 years is outside the validated range 40–79 years"),
        (["risk", "hasbled", "--input", "{}"], "missing input for hasbled: hypertension"),
        (["risk", "pce", "--input", "[1, 2]"], "--input must be a JSON object"),
        (["risk", "pce", "--input", "{oops"], "--input is not valid JSON"),
        (["risk", "pce", "--input", f"@{tmp_path / 'missing.json'}"], "cannot read"),
    ]:
        code, _, err = cli(*argv)
        assert code == 1 and err.count("\n") == 1 and message in err, (argv, err)
